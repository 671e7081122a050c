package edge

import (
	"strconv"
)

// decodePostFast parses the common shapes of post and post_batch commands
// without reflection: one JSON object whose members are among id, cmd,
// room, key, body, thread and posts (an array of objects with room, key,
// body and thread), each at most once, with strings of printable ASCII and
// no escapes, an id that is a plain integer or such a string, and threads
// of plain digits. It reports false for anything else, which decodeCommand
// then parses with encoding/json; when it accepts, the command is exactly
// what encoding/json would give (FuzzDecodeCommand checks both on every
// input). Under load the edge spent 12-18 % of its CPU decoding commands.
func decodePostFast(data []byte) (*command, bool) {
	p := fastParser{b: data}
	p.space()
	var c command
	var post postItem // the command's own room, key, body and thread
	var seen [7]bool
	ok := p.object(func(name []byte) bool {
		field := -1
		switch string(name) {
		case "id":
			field = 0
			start := p.i
			if _, ok := p.str(); !ok && !p.integer() {
				return false
			}
			c.ID = data[start:p.i:p.i]
		case "cmd":
			field = 1
			v, ok := p.str()
			if !ok {
				return false
			}
			c.Cmd = string(v)
		case "room", "key", "body", "thread":
			var ok bool
			if field, ok = p.postField(string(name), &post); !ok {
				return false
			}
			field += 2
		case "posts":
			field = 6
			posts, ok := p.posts()
			if !ok {
				return false
			}
			c.Posts = posts
		default:
			return false
		}
		if seen[field] {
			return false // encoding/json keeps the last: leave it to it
		}
		seen[field] = true
		return true
	})
	if !ok || c.Cmd == "" {
		return nil, false
	}
	p.space()
	if p.i != len(data) || c.Cmd != cmdPost && c.Cmd != cmdPostBatch || len(c.ID) > idSizeMax {
		return nil, false
	}
	c.Room, c.Key, c.Body, c.Thread = post.Room, post.Key, post.Body, post.Thread
	return &c, true
}

// posts reads an array of post objects (at most PostBatchMax+1: more is
// refused later anyway, and encoding/json reads the rest).
func (p *fastParser) posts() ([]postItem, bool) {
	if !p.byte('[') {
		return nil, false
	}
	out := make([]postItem, 0, 16)
	for first := true; ; first = false {
		p.space()
		if p.byte(']') {
			return out, true
		}
		if !first && (!p.byte(',') || !p.spaced()) {
			return nil, false
		}
		if len(out) > PostBatchMax {
			return nil, false
		}
		item, ok := p.postItem()
		if !ok {
			return nil, false
		}
		out = append(out, item)
	}
}

// postItem reads one {room, key, body, thread} object.
func (p *fastParser) postItem() (postItem, bool) {
	var it postItem
	var seen [4]bool
	ok := p.object(func(name []byte) bool {
		field, ok := p.postField(string(name), &it)
		if !ok || seen[field] {
			return false
		}
		seen[field] = true
		return true
	})
	return it, ok
}

// object reads a JSON object, handing each member's name to member, which
// reads the value (the parser is at it) and says whether it took it.
func (p *fastParser) object(member func(name []byte) bool) bool {
	if !p.byte('{') {
		return false
	}
	for first := true; ; first = false {
		p.space()
		if p.byte('}') {
			return true
		}
		if !first && (!p.byte(',') || !p.spaced()) {
			return false
		}
		name, ok := p.str()
		if !ok {
			return false
		}
		p.space()
		if !p.byte(':') {
			return false
		}
		p.space()
		if !member(name) {
			return false
		}
	}
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// spaced skips whitespace after a comma; always true.
func (p *fastParser) spaced() bool { p.space(); return true }

func (p *fastParser) byte(b byte) bool {
	if p.i < len(p.b) && p.b[p.i] == b {
		p.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes and returns its
// contents (aliasing the input).
func (p *fastParser) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch b := p.b[p.i]; {
		case b == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case b < 0x20 || b >= 0x7f || b == '\\':
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// postField reads the value of a post's member name (room, key, body or
// thread) into it and says which of the four it was.
func (p *fastParser) postField(name string, it *postItem) (field int, ok bool) {
	if name == "thread" {
		start := p.i
		if !p.digits() {
			return 0, false
		}
		n, err := strconv.ParseUint(string(p.b[start:p.i]), 10, 64)
		it.Thread = n
		return 3, err == nil
	}
	v, ok := p.str()
	if !ok {
		return 0, false
	}
	switch name {
	case "room":
		it.Room = string(v)
		return 0, true
	case "key":
		it.Key = string(v)
		return 1, true
	case "body":
		body := string(v)
		it.Body = &body
		return 2, true
	}
	return 0, false
}

// integer reads -?digits as JSON writes them (no leading zeros).
func (p *fastParser) integer() bool {
	p.byte('-')
	return p.digits()
}

// digits reads 0 or [1-9][0-9]* and refuses what follows as part of a
// number (a fraction or an exponent: leave those to encoding/json).
func (p *fastParser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - start
	if n == 0 || n > 1 && p.b[start] == '0' {
		return false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return false
	}
	return true
}
