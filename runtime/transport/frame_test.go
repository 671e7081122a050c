package transport

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"tigerchat/model"
)

// testKey is a fixed key so that fuzz seeds are reproducible.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func testPublic() ed25519.PublicKey { return testKey.Public().(ed25519.PublicKey) }

// testSigner seals and verifies with testKey: the hello's authenticator and
// every frame's under FrameAuthEd25519.
var testSigner = signedAuth{private: testKey, public: testPublic()}

var testHeader = frameHeader{From: 1, To: 2, Session: SessionID{1, 2, 3}}

// sealedFrame is a whole frame (length field first) carrying msgs.
func sealedFrame(counter uint64, msgs ...[]byte) []byte {
	h := testHeader
	h.Counter = counter
	return appendFrame(nil, h, msgs, testSigner)
}

// resealed signs frame again after a test changed its count or messages
// (and its length field, if the size changed).
func resealed(frame []byte, counter uint64) []byte {
	binary.LittleEndian.PutUint32(frame, uint32(len(frame)-frameLengthSize))
	h := testHeader
	h.Counter = counter
	sealFrame(frame, h, testSigner)
	return frame
}

// repeated is count messages of size bytes, each with its index in front.
func repeated(count, size int) [][]byte {
	msgs := make([][]byte, count)
	for i := range msgs {
		msgs[i] = bytes.Repeat([]byte{byte(i)}, size)
		copy(msgs[i], fmt.Sprint(i))
	}
	return msgs
}

func TestFrameRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		msgs [][]byte
	}{
		{"hello", nil},
		{"empty message", [][]byte{{}}},
		{"1 byte", repeated(1, 1)},
		{"256 bytes", repeated(1, 256)},
		{"16 KiB", repeated(1, 16<<10)},
		{"largest message", repeated(1, model.MessageSizeMax)},
		{"2 messages", repeated(2, 100)},
		{"largest count", repeated(batchCountMax, 256)},
		{"largest count, some empty", append(repeated(batchCountMax-2, 3), nil, []byte{})},
		{"largest batch", repeated(4, batchBytesMax/4)},
		{"largest frame", append(repeated(batchCountMax-1, 0), make([]byte, batchBytesMax))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame := sealedFrame(42, tc.msgs...)
			size := frameLengthSize + frameHeaderSize + len(tc.msgs)*messageHeaderSize + signatureSize
			for _, msg := range tc.msgs {
				size += len(msg)
			}
			if len(frame) != size {
				t.Fatalf("frame length %d, want %d", len(frame), size)
			}
			fr := newFrameReader(bytes.NewReader(frame))
			body, owned, err := fr.next()
			if err != nil {
				t.Fatal(err)
			}
			if owned != (len(body) > readBufferSize) {
				t.Fatalf("%d-byte body: owned %v", len(body), owned)
			}
			h, count, section, _, err := decodeFrame(body, signatureSize)
			if err != nil {
				t.Fatal(err)
			}
			want := testHeader
			want.Counter = 42
			if h != want || int(count) != len(tc.msgs) {
				t.Fatalf("decoded %+v with %d messages", h, count)
			}
			var batch [batchCountMax][]byte
			n, err := decodeBatch(count, section, &batch)
			if err != nil || n != len(tc.msgs) {
				t.Fatalf("decode batch: %d messages, %v", n, err)
			}
			for i := range n {
				if !bytes.Equal(batch[i], tc.msgs[i]) || cap(batch[i]) != len(batch[i]) {
					t.Fatalf("message %d: %d bytes (cap %d), want %d", i, len(batch[i]), cap(batch[i]), len(tc.msgs[i]))
				}
			}
			if !verifyFrame(testSigner, body) {
				t.Fatal("signature does not verify")
			}
			if _, _, err := fr.next(); err != io.EOF {
				t.Fatalf("after the last frame: %v, want EOF", err)
			}
		})
	}
}

// appendFrame refuses (it is a bug in the caller) a batch beyond its bounds.
func TestAppendFrameBounds(t *testing.T) {
	for name, msgs := range map[string][][]byte{
		"too many messages":  repeated(batchCountMax+1, 1),
		"too many bytes":     repeated(2, batchBytesMax/2+1),
		"message too large":  {make([]byte, model.MessageSizeMax+1)},
		"messages too large": append(repeated(1, 1), make([]byte, batchBytesMax)),
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			appendFrame(nil, testHeader, msgs, testSigner)
		})
	}
	// Appending reuses a buffer with room and keeps what it holds.
	buf := make([]byte, 3, 1<<10)
	out := appendFrame(buf, testHeader, repeated(2, 10), testSigner)
	if &out[0] != &buf[0] || len(out) != 3+frameLengthSize+frameHeaderSize+2*(messageHeaderSize+10)+signatureSize {
		t.Fatalf("appended %d bytes, reallocated %v", len(out)-3, &out[0] != &buf[0])
	}
}

// Every signed field is covered: flipping any bit of a frame body fails
// verification, in the header, the count, any size and any message.
func TestFrameSignatureCoversEveryByte(t *testing.T) {
	frame := sealedFrame(9, []byte("one"), nil, []byte("three"))
	body := frame[frameLengthSize:]
	for i := range body {
		forged := bytes.Clone(body)
		forged[i] ^= 1
		if verifyFrame(testSigner, forged) {
			t.Fatalf("flipping byte %d kept the signature valid", i)
		}
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if verifyFrame(signedAuth{public: other}, body) {
		t.Fatal("verified with another key")
	}
}

func TestFrameReaderErrors(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty", nil, io.EOF},
		{"partial length", []byte{1, 2}, io.ErrUnexpectedEOF},
		{"oversize", le.AppendUint32(nil, frameBodyMax+1), errFrameOversize},
		{"huge", le.AppendUint32(nil, 1<<32-1), errFrameOversize},
		{"short", le.AppendUint32(nil, frameBodyMin-1), errFrameShort},
		{"zero", le.AppendUint32(nil, 0), errFrameShort},
		{"truncated body", sealedFrame(1, []byte("x"))[:50], io.ErrUnexpectedEOF},
		{"truncated large body", sealedFrame(1, make([]byte, readBufferSize))[:readBufferSize], io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := newFrameReader(bytes.NewReader(tc.input)).next()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// A messages section that does not parse exactly into its count of
// messages within the bounds is refused as a whole.
func TestDecodeBatchErrors(t *testing.T) {
	le := binary.LittleEndian
	sized := func(sizes ...uint32) []byte { // sizes, each followed by as many bytes
		var b []byte
		for _, n := range sizes {
			b = le.AppendUint32(b, n)
			b = append(b, make([]byte, min(n, 2*model.MessageSizeMax))...)
		}
		return b
	}
	cases := []struct {
		name    string
		count   uint32
		section []byte
	}{
		{"count above the bound", batchCountMax + 1, sized(make([]uint32, batchCountMax+1)...)},
		{"count huge", 1<<32 - 1, nil},
		{"fewer messages than the count", 3, sized(1, 2)},
		{"more messages than the count", 1, sized(1, 2)},
		{"bytes after the messages", 1, append(sized(1), 0)},
		{"size cut off", 2, append(sized(1), 0, 0)},
		{"size past the end", 1, le.AppendUint32(nil, 5)},
		{"size past the end by one", 1, append(le.AppendUint32(nil, 5), 1, 2, 3, 4)},
		{"size huge", 1, le.AppendUint32(nil, 1<<32-1)},
		{"message above the maximum", 1, sized(model.MessageSizeMax + 1)},
		{"messages above the batch bound", 2, sized(model.MessageSizeMax, 1)},
		{"section without count", 0, []byte{0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var batch [batchCountMax][]byte
			if n, err := decodeBatch(tc.count, tc.section, &batch); !errors.Is(err, errBatch) {
				t.Fatalf("%d messages, %v; want errBatch", n, err)
			}
		})
	}
}

// fuzzSeeds are streams of frames, valid and not: every kind of malformed
// batch is also signed, so that the fuzzer starts past the signature.
func fuzzSeeds() [][]byte {
	le := binary.LittleEndian
	countIs := func(frame []byte, count uint32) []byte {
		le.PutUint32(frame[frameLengthSize+frameHeaderSize-4:], count)
		return resealed(frame, 7)
	}
	sizeIs := func(frame []byte, size uint32) []byte {
		le.PutUint32(frame[frameLengthSize+frameHeaderSize:], size)
		return resealed(frame, 8)
	}
	tampered := sealedFrame(4, []byte("tampered"))
	tampered[frameLengthSize+frameHeaderSize+messageHeaderSize] ^= 1
	trailing := sealedFrame(9, []byte("x"))
	trailing = append(trailing[:len(trailing)-signatureSize], make([]byte, 1+signatureSize)...)
	return [][]byte{
		{},
		sealedFrame(0),
		sealedFrame(1, []byte("hello")),
		sealedFrame(2, []byte("one"), []byte("two"), nil, []byte("four")),
		append(sealedFrame(1, []byte("one")), sealedFrame(2, []byte("two"), []byte("three"))...),
		sealedFrame(3, repeated(batchCountMax, 5)...),
		sealedFrame(3, bytes.Repeat([]byte{1}, 300))[:200],
		tampered,
		countIs(sealedFrame(5, []byte("a"), []byte("b")), 1),
		countIs(sealedFrame(5, []byte("a"), []byte("b")), 3),
		countIs(sealedFrame(5, repeated(batchCountMax, 0)...), batchCountMax+1),
		countIs(sealedFrame(5, []byte("a")), 0),
		sizeIs(sealedFrame(6, []byte("abc")), 4),
		sizeIs(sealedFrame(6, []byte("abc")), 2),
		sizeIs(sealedFrame(6, []byte("abc")), 1<<31),
		resealed(trailing, 9),
		le.AppendUint32(nil, frameBodyMax+1),
		le.AppendUint32(nil, frameBodyMin-1),
		append(le.AppendUint32(nil, frameBodyMin), make([]byte, frameBodyMin)...),
	}
}

// FuzzFrameDecode feeds arbitrary streams to the frame reader and decoders:
// they never panic, every frame and message they return is within bounds,
// and a frame that verifies and parses is exactly what framing its decoded
// fields again produces.
func FuzzFrameDecode(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(bytes.NewReader(data))
		for range 64 {
			body, _, err := fr.next()
			if err != nil {
				return
			}
			checkFuzzedFrame(t, testSigner, body)
		}
	})
}

func checkFuzzedFrame(t *testing.T, auth frameAuth, body []byte) {
	if len(body) < frameBodyMin || len(body) > frameBodyMax {
		t.Fatalf("reader returned a %d-byte body", len(body))
	}
	h, count, section, signature, err := decodeFrame(body, auth.size())
	if len(body) < frameHeaderSize+auth.size() {
		if err == nil {
			t.Fatalf("decoded a %d-byte body with a %d-byte authenticator", len(body), auth.size())
		}
		return
	}
	if err != nil {
		t.Fatalf("decode a body the reader accepted: %v", err)
	}
	if len(section)+frameHeaderSize+auth.size() != len(body) || len(signature) != auth.size() {
		t.Fatalf("messages %d, signature %d, body %d", len(section), len(signature), len(body))
	}
	var batch [batchCountMax][]byte
	n, err := decodeBatch(count, section, &batch)
	if err != nil {
		if !errors.Is(err, errBatch) {
			t.Fatalf("decode batch: %v", err)
		}
		return
	}
	total := 0
	for _, msg := range batch[:n] {
		if len(msg) > model.MessageSizeMax || cap(msg) != len(msg) {
			t.Fatalf("message of %d bytes, cap %d", len(msg), cap(msg))
		}
		total += len(msg)
	}
	if n != int(count) || n > batchCountMax || total > batchBytesMax || total+n*messageHeaderSize != len(section) {
		t.Fatalf("%d messages (count %d) of %d bytes in a %d-byte section", n, count, total, len(section))
	}
	if verifyFrame(auth, body) {
		again := appendFrame(nil, h, batch[:n], auth)
		if !bytes.Equal(again[frameLengthSize:], body) {
			t.Fatal("a verified frame differs from its framed-again fields")
		}
	}
}
