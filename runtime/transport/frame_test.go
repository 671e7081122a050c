package transport

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"tigerchat/model"
)

// testKey is a fixed key so that fuzz seeds are reproducible.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func testPublic() ed25519.PublicKey { return testKey.Public().(ed25519.PublicKey) }

func sealedFrame(payload []byte, counter uint64) []byte {
	frame := newFrame(payload)
	sealFrame(frame, frameHeader{From: 1, To: 2, Session: SessionID{1, 2, 3}, Counter: counter}, testKey)
	return frame
}

func TestFrameRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 255, 256, 16 << 10, model.MessageSizeMax} {
		payload := bytes.Repeat([]byte{0xa5}, size)
		frame := sealedFrame(payload, 42)
		if len(frame) != size+frameOverhead {
			t.Fatalf("size %d: frame length %d", size, len(frame))
		}
		fr := newFrameReader(bytes.NewReader(frame))
		body, err := fr.next()
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		h, got, _, err := decodeFrame(body)
		if err != nil {
			t.Fatal(err)
		}
		want := frameHeader{From: 1, To: 2, Session: SessionID{1, 2, 3}, Counter: 42}
		if h != want || !bytes.Equal(got, payload) {
			t.Fatalf("size %d: decoded %+v, payload equal %v", size, h, bytes.Equal(got, payload))
		}
		if !verifyFrame(testPublic(), body) {
			t.Fatalf("size %d: signature does not verify", size)
		}
		if _, err := fr.next(); err != io.EOF {
			t.Fatalf("after the last frame: %v, want EOF", err)
		}
	}
}

// Every signed field is covered: flipping any bit of a frame body fails
// verification.
func TestFrameSignatureCoversEveryByte(t *testing.T) {
	frame := sealedFrame([]byte("payload"), 9)
	body := frame[frameLengthSize:]
	for i := range body {
		forged := bytes.Clone(body)
		forged[i] ^= 1
		if verifyFrame(testPublic(), forged) {
			t.Fatalf("flipping byte %d kept the signature valid", i)
		}
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if verifyFrame(other, body) {
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
		{"truncated body", sealedFrame([]byte("x"), 1)[:50], io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newFrameReader(bytes.NewReader(tc.input)).next()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzFrameDecode feeds arbitrary streams to the frame reader and decoder:
// they never panic, every frame they return is within bounds, and a frame
// that verifies is exactly what sealing its decoded fields produces.
func FuzzFrameDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(sealedFrame(nil, 1))
	f.Add(sealedFrame([]byte("hello"), 2))
	f.Add(append(sealedFrame([]byte("one"), 1), sealedFrame([]byte("two"), 2)...))
	f.Add(sealedFrame(bytes.Repeat([]byte{1}, 300), 3)[:200])
	tampered := sealedFrame([]byte("tampered"), 4)
	tampered[40] ^= 1
	f.Add(tampered)
	f.Add(binary.LittleEndian.AppendUint32(nil, frameBodyMax+1))
	f.Add(binary.LittleEndian.AppendUint32(nil, frameBodyMin-1))
	f.Add(append(binary.LittleEndian.AppendUint32(nil, frameBodyMin), make([]byte, frameBodyMin)...))

	public := testPublic()
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(bytes.NewReader(data))
		for range 64 {
			body, err := fr.next()
			if err != nil {
				return
			}
			if len(body) < frameBodyMin || len(body) > frameBodyMax {
				t.Fatalf("reader returned a %d-byte body", len(body))
			}
			h, payload, signature, err := decodeFrame(body)
			if err != nil {
				t.Fatalf("decode a body the reader accepted: %v", err)
			}
			if len(payload)+frameBodyMin != len(body) || len(signature) != signatureSize {
				t.Fatalf("payload %d, signature %d, body %d", len(payload), len(signature), len(body))
			}
			if verifyFrame(public, body) {
				again := newFrame(payload)
				sealFrame(again, h, testKey)
				if !bytes.Equal(again[frameLengthSize:], body) {
					t.Fatal("a verified frame differs from its resealed fields")
				}
			}
		}
	})
}
