package wire

import (
	"bytes"
	"errors"
	"testing"

	"tigerchat/model"
)

func sample() Header {
	return Header{
		Parent:     ChecksumOf([]byte("parent")),
		Context:    ChecksumOf([]byte("context")),
		Cluster:    7,
		Client:     99,
		Request:    3,
		Op:         12,
		Commit:     11,
		Checkpoint: 8,
		Timestamp:  -5,
		Nonce:      42,
		View:       4,
		LogView:    3,
		Command:    CommandPrepare,
		Operation:  2,
		Replica:    1,
		Flags:      1,
	}
}

func TestRoundTrip(t *testing.T) {
	body := []byte("hello, tigers")
	msg := Message(sample(), body)
	h, got, err := Decode(msg)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := sample()
	want.SetChecksums(body)
	if h != want {
		t.Fatalf("header mismatch:\n got %+v\nwant %+v", h, want)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("body = %q", got)
	}
}

func TestEveryBitFlipDetected(t *testing.T) {
	msg := Message(sample(), []byte("payload bytes"))
	for i := 0; i < len(msg)*8; i++ {
		bad := bytes.Clone(msg)
		bad[i/8] ^= 1 << (i % 8)
		if _, _, err := Decode(bad); err == nil {
			t.Fatalf("flip of bit %d not detected", i)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	msg := Message(sample(), []byte("body"))
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short header", msg[:100], ErrTruncated},
		{"truncated body", msg[:len(msg)-1], ErrTruncated},
		{"trailing bytes", append(bytes.Clone(msg), 0), ErrSizeMismatch},
		{"oversize", make([]byte, model.MessageSizeMax+1), ErrOversize},
		{"zeros", make([]byte, HeaderSize), ErrHeaderChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := Decode(c.in); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestUnknownCommandRejected(t *testing.T) {
	h := sample()
	h.Command = Command(200)
	msg := Message(h, nil)
	if _, _, err := Decode(msg); !errors.Is(err, ErrCommand) {
		t.Fatalf("err = %v, want ErrCommand", err)
	}
}

func TestCommandNames(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Commands() {
		name := c.String()
		if seen[name] || name == "" {
			t.Fatalf("command %d has duplicate or empty name %q", c, name)
		}
		seen[name] = true
	}
	if len(seen) != int(commandCount)-1 {
		t.Fatalf("%d names for %d commands", len(seen), commandCount-1)
	}
}

func TestDecodePrefixIgnoresPadding(t *testing.T) {
	msg := Message(sample(), []byte("slot"))
	slot := make([]byte, model.SectorSize)
	copy(slot, msg)
	h, body, err := DecodePrefix(slot)
	if err != nil || string(body) != "slot" || h.Op != 12 {
		t.Fatalf("DecodePrefix = %+v %q %v", h.Op, body, err)
	}
}

func BenchmarkEncode(b *testing.B) {
	body := make([]byte, 256)
	buf := make([]byte, HeaderSize+len(body))
	h := sample()
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		h.Op = uint64(i)
		h.SetChecksums(body)
		h.Encode(buf)
		copy(buf[HeaderSize:], body)
	}
}

func BenchmarkDecode(b *testing.B) {
	msg := Message(sample(), make([]byte, 256))
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for i := 0; i < b.N; i++ {
		if _, _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// The peeks read what Encode wrote, for every command.
func TestPeeksMatchEncode(t *testing.T) {
	for _, c := range Commands() {
		h := sample()
		h.Command, h.Client = c, 0x1122334455667788
		msg := Message(h, nil)
		if PeekCommand(msg) != c || PeekClient(msg) != h.Client {
			t.Fatalf("%v: peeked %v, client %x", c, PeekCommand(msg), PeekClient(msg))
		}
	}
}
