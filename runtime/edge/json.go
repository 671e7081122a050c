package edge

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"tigerchat/model/chat"
)

// messageJSON is a message as clients see it, in history and in events.
// time_ns is a decimal string: JSON numbers lose precision above 2^53. key
// is the idempotency key of the message's post (not hashed).
type messageJSON struct {
	Event    string `json:"event,omitempty"`
	Room     string `json:"room"`
	Thread   uint64 `json:"thread"`
	Seq      uint64 `json:"seq"`
	Hash     string `json:"hash"`
	PrevHash string `json:"prev_hash"`
	Author   string `json:"author"`
	Time     string `json:"time"`
	TimeNs   string `json:"time_ns"`
	Key      string `json:"key"`
	Body     string `json:"body,omitempty"`
	BodyB64  string `json:"body_b64,omitempty"`
}

func hexHash(h chat.Hash) string {
	var b [2 * len(chat.Hash{})]byte
	hex.Encode(b[:], h[:])
	return string(b[:]) // one allocation: the string
}

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func toMessageJSON(m *chat.Message, event string) messageJSON {
	j := messageJSON{
		Event: event, Room: m.Room, Thread: m.Thread, Seq: m.Seq,
		Hash: hexHash(m.Hash), PrevHash: hexHash(m.PrevHash), Author: m.Author,
		Time: formatTime(m.TimeNs), TimeNs: strconv.FormatInt(m.TimeNs, 10), Key: m.Key,
	}
	if utf8.Valid(m.Body) {
		j.Body = string(m.Body)
	} else {
		j.BodyB64 = base64.StdEncoding.EncodeToString(m.Body)
	}
	return j
}

// logJSON is a log view. Truncated is always present: null, or the seqs
// the read wanted that the cluster no longer holds (chat.ReadGap).
type logJSON struct {
	Room      string        `json:"room"`
	Thread    uint64        `json:"thread"`
	HeadSeq   uint64        `json:"head_seq"`
	HeadHash  string        `json:"head_hash"`
	FirstSeq  uint64        `json:"first_seq"`
	More      bool          `json:"more"`
	Truncated *gapJSON      `json:"truncated"`
	Messages  []messageJSON `json:"messages"`
	// view, when set, holds the messages instead of Messages, and
	// appendJSON writes them straight from it: turning each of a page's
	// 50 messages into strings first was most of what the edge allocated
	// per history read (BenchmarkHistoryPageJSON).
	view *chat.LogView
}

// messages is j's messages as messageJSON values (for gRPC).
func (j *logJSON) messages() []messageJSON {
	if j.view == nil {
		return j.Messages
	}
	out := make([]messageJSON, len(j.view.Messages))
	for i := range j.view.Messages {
		out[i] = toMessageJSON(&j.view.Messages[i], "")
	}
	return out
}

// gapJSON is the seqs from..to, both included.
type gapJSON struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// appendJSON appends j as json.Marshal writes it, without reflection: a
// history page is 50 of them.
func (j *messageJSON) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if j.Event != "" {
		b = appendJSONString(append(b, `"event":`...), j.Event)
		b = append(b, ',')
	}
	b = appendJSONString(append(b, `"room":`...), j.Room)
	b = strconv.AppendUint(append(b, `,"thread":`...), j.Thread, 10)
	b = strconv.AppendUint(append(b, `,"seq":`...), j.Seq, 10)
	b = appendJSONString(append(b, `,"hash":`...), j.Hash)
	b = appendJSONString(append(b, `,"prev_hash":`...), j.PrevHash)
	b = appendJSONString(append(b, `,"author":`...), j.Author)
	b = appendJSONString(append(b, `,"time":`...), j.Time)
	b = appendJSONString(append(b, `,"time_ns":`...), j.TimeNs)
	b = appendJSONString(append(b, `,"key":`...), j.Key)
	if j.Body != "" {
		b = appendJSONString(append(b, `,"body":`...), j.Body)
	}
	if j.BodyB64 != "" {
		b = appendJSONString(append(b, `,"body_b64":`...), j.BodyB64)
	}
	return append(b, '}')
}

// appendMessageJSON appends m as toMessageJSON(m, "").appendJSON would,
// without making a string of each field first.
func appendMessageJSON(b []byte, m *chat.Message) []byte {
	b = appendJSONString(append(b, `{"room":`...), m.Room)
	b = strconv.AppendUint(append(b, `,"thread":`...), m.Thread, 10)
	b = strconv.AppendUint(append(b, `,"seq":`...), m.Seq, 10)
	b = append(hex.AppendEncode(append(b, `,"hash":"`...), m.Hash[:]), '"')
	b = append(hex.AppendEncode(append(b, `,"prev_hash":"`...), m.PrevHash[:]), '"')
	b = appendJSONString(append(b, `,"author":`...), m.Author)
	b = append(time.Unix(0, m.TimeNs).UTC().AppendFormat(append(b, `,"time":"`...), time.RFC3339Nano), '"')
	b = append(strconv.AppendInt(append(b, `,"time_ns":"`...), m.TimeNs, 10), '"')
	b = appendJSONString(append(b, `,"key":`...), m.Key)
	switch {
	case !utf8.Valid(m.Body):
		b = append(base64.StdEncoding.AppendEncode(append(b, `,"body_b64":"`...), m.Body), '"')
	case len(m.Body) > 0:
		b = appendJSONString(append(b, `,"body":`...), m.Body)
	}
	return append(b, '}')
}

// appendJSON appends j as json.Marshal writes it, without reflection.
func (j logJSON) appendJSON(b []byte) []byte {
	b = appendJSONString(append(b, `{"room":`...), j.Room)
	b = strconv.AppendUint(append(b, `,"thread":`...), j.Thread, 10)
	b = strconv.AppendUint(append(b, `,"head_seq":`...), j.HeadSeq, 10)
	b = appendJSONString(append(b, `,"head_hash":`...), j.HeadHash)
	b = strconv.AppendUint(append(b, `,"first_seq":`...), j.FirstSeq, 10)
	b = strconv.AppendBool(append(b, `,"more":`...), j.More)
	b = append(b, `,"truncated":`...)
	if j.Truncated == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendUint(append(b, `{"from":`...), j.Truncated.From, 10)
		b = strconv.AppendUint(append(b, `,"to":`...), j.Truncated.To, 10)
		b = append(b, '}')
	}
	b = append(b, `,"messages":`...)
	if j.view != nil {
		b = append(b, '[')
		for i := range j.view.Messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendMessageJSON(b, &j.view.Messages[i])
		}
		b = append(b, ']')
	} else if j.Messages == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range j.Messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = j.Messages[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// MarshalJSON: REST and the snapshot's log write a log view this way too.
func (j logJSON) MarshalJSON() ([]byte, error) {
	size := 256
	for i := range j.Messages {
		size += 320 + len(j.Messages[i].Body) + len(j.Messages[i].BodyB64)
	}
	if j.view != nil {
		for i := range j.view.Messages {
			size += 320 + len(j.view.Messages[i].Body)*4/3
		}
	}
	return j.appendJSON(make([]byte, 0, size)), nil
}

// appendJSONString appends s as a JSON string, as json.Marshal writes it.
func appendJSONString[T string | []byte](b []byte, s T) []byte {
	if plainJSONString(s) {
		return append(append(append(b, '"'), s...), '"')
	}
	return append(b, mustJSON(string(s))...)
}

// toLogJSON makes the log object of a read: operation, seq and limit are
// the read's (chat.ReadGap's arguments; a snapshot passes ReadLatest).
func toLogJSON(v *chat.LogView, operation uint8, seq uint64, limit uint16) logJSON {
	j := logJSON{Room: v.Room, Thread: v.Thread, HeadSeq: v.HeadSeq, HeadHash: hexHash(v.HeadHash),
		FirstSeq: v.FirstSeq, More: v.More, view: v}
	if from, to, ok := chat.ReadGap(operation, seq, limit, v); ok {
		j.Truncated = &gapJSON{From: from, To: to}
	}
	return j
}

type roomInfoJSON struct {
	Private   bool   `json:"private"`
	Audit     bool   `json:"audit"`
	Direct    bool   `json:"direct"`
	Member    bool   `json:"member"`
	Retention uint32 `json:"retention"`
	Creator   string `json:"creator"`
	Created   string `json:"created"`
	Members   uint32 `json:"members"`
	Threads   uint32 `json:"threads"`
}

type snapshotJSON struct {
	Info roomInfoJSON `json:"info"`
	Log  logJSON      `json:"log"`
}

func toSnapshotJSON(r *chat.RoomSnapshotReply, limit uint16) snapshotJSON {
	in := &r.Info
	return snapshotJSON{
		Info: roomInfoJSON{Private: in.Private, Audit: in.Audit, Direct: in.Direct, Member: in.Member,
			Retention: in.RetentionCount, Creator: in.Creator, Created: formatTime(in.CreatedNs),
			Members: in.Members, Threads: in.Threads},
		Log: toLogJSON(&r.Log, chat.OperationReadLatest, 0, limit),
	}
}

type postJSON struct {
	Room      string `json:"room"`
	Thread    uint64 `json:"thread"`
	Seq       uint64 `json:"seq"`
	Hash      string `json:"hash"`
	Time      string `json:"time"`
	TimeNs    string `json:"time_ns"`
	Duplicate bool   `json:"duplicate"`
	Key       string `json:"key"`
}

// postBatchJSON is a post_batch reply: one result per post, in order.
type postBatchJSON struct {
	Results []postResultJSON `json:"results"`
}

// postResultJSON is a post's result (the object post returns) or its error.
type postResultJSON struct {
	Post *postJSON
	Err  *Error
}

// jsonAppender is a result that writes its own JSON, the bytes json.Marshal
// would write, without reflection: the results sent once per post.
type jsonAppender interface {
	appendJSON(b []byte) []byte
}

func (pb postBatchJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"results":[`...)
	for i, r := range pb.Results {
		if i > 0 {
			b = append(b, ',')
		}
		if r.Err != nil {
			b = append(b, mustJSON(errorJSON{Error: r.Err})...)
		} else {
			b = r.Post.appendJSON(b)
		}
	}
	return append(b, "]}"...)
}

// MarshalJSON: REST writes a batch's reply with encoding/json.
func (pb postBatchJSON) MarshalJSON() ([]byte, error) { return pb.appendJSON(nil), nil }

// appendJSON appends p as json.Marshal writes it, without reflection (an
// ack per post); a string that would need escaping falls back to
// json.Marshal (ids and keys never do: the state machine allows only
// [A-Za-z0-9._-]).
func (p postJSON) appendJSON(b []byte) []byte {
	for _, s := range [...]string{p.Room, p.Hash, p.Time, p.TimeNs, p.Key} {
		if !plainJSONString(s) {
			return append(b, mustJSON(p)...)
		}
	}
	b = append(b, `{"room":"`...)
	b = append(b, p.Room...)
	b = append(b, `","thread":`...)
	b = strconv.AppendUint(b, p.Thread, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, p.Seq, 10)
	b = append(b, `,"hash":"`...)
	b = append(b, p.Hash...)
	b = append(b, `","time":"`...)
	b = append(b, p.Time...)
	b = append(b, `","time_ns":"`...)
	b = append(b, p.TimeNs...)
	b = append(b, `","duplicate":`...)
	b = strconv.AppendBool(b, p.Duplicate)
	b = append(b, `,"key":"`...)
	b = append(b, p.Key...)
	return append(b, `"}`...)
}

// plainJSONString: s needs no escaping in JSON (json.Marshal's HTML
// escaping included).
func plainJSONString[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

type membersJSON struct {
	Room    string `json:"room"`
	Members uint32 `json:"members"`
}

type dmJSON struct {
	Room    string `json:"room"`
	Peer    string `json:"peer"`
	Created bool   `json:"created"`
}

type subscribedJSON struct {
	Room    string `json:"room"`
	Thread  uint64 `json:"thread"`
	Since   uint64 `json:"since"`
	HeadSeq uint64 `json:"head_seq"`
}

type whoamiJSON struct {
	Tenant  string `json:"tenant"`
	User    string `json:"user"`
	Rooms   Scope  `json:"rooms"`
	Expires string `json:"expires"`
}

type errorJSON struct {
	ID    json.RawMessage `json:"id,omitempty"`
	Error *Error          `json:"error"`
}

// mustJSON marshals values the edge builds itself (never fails).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("edge: marshal " + err.Error())
	}
	return b
}

// okFrame is a WebSocket reply: {"id":..,"ok":true, ...result fields}.
// A jsonAppender's fields are written in place, into one buffer sized for
// a post's result: one allocation per reply.
func okFrame(id json.RawMessage, result any) []byte {
	b := make([]byte, 0, okFrameSize+len(id))
	b = append(b, '{')
	if len(id) > 0 {
		b = append(append(append(b, `"id":`...), id...), ',')
	}
	b = append(b, `"ok":true`...)
	var inner []byte
	switch r := result.(type) {
	case nil:
	case jsonAppender:
		at := len(b)
		b = r.appendJSON(b) // {fields}: its braces become ',' and the end
		if len(b)-at <= 2 {
			b = b[:at]
		} else {
			b[at] = ','
			b = b[:len(b)-1]
		}
	default:
		inner = mustJSON(result)
	}
	if len(inner) > 2 {
		b = append(append(b, ','), inner[1:len(inner)-1]...)
	}
	return append(b, '}')
}

// okFrameSize is the capacity okFrame starts with: a post's reply fits.
const okFrameSize = 320

func errorFrame(id json.RawMessage, e *Error) []byte {
	return mustJSON(errorJSON{ID: id, Error: e})
}

func formatInt(v int64) string { return strconv.FormatInt(v, 10) }

type roomThreadJSON struct {
	Room   string `json:"room"`
	Thread uint64 `json:"thread"`
}
