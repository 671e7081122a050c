package transport

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"tigerchat/model"
)

// Frame format. Each direction of a connection is one QUIC unidirectional
// stream carrying a sequence of frames; integers are little-endian, like
// model/wire:
//
//	offset  size  field
//	0       4     length: bytes that follow, in [frameBodyMin, frameBodyMax]
//	4       4     from: sender's model.Address
//	8       4     to: receiver's model.Address
//	12      16    session: id of the connection (TLS exporter, see session.go)
//	28      8     counter: 0 for the hello (session.go), then 1, 2, 3, ...
//	              per session and direction
//	36      n     payload: one model message, n <= model.MessageSizeMax
//	36+n    64    signature: Ed25519(sender key,
//	              signDomain || SHA-256(bytes [4, 36+n)))
//
// The signature covers every field but the length (which the framing already
// fixes). signDomain is a fixed tag that names this format and no cluster, so
// a signed frame can never be mistaken for another object signed with the
// node's key (a TLS CertificateVerify, an audit log entry).
//
// Why hash first, with SHA-256: pure Ed25519 hashes its message twice with
// SHA-512, and Ed25519ph once with SHA-512; SHA-256 has hardware support
// (SHA-NI) where SHA-512 does not, and measured 1.8 GB/s against 0.75 GB/s
// here. A 1 MiB prepare then costs ~0.6 ms of hashing on each side plus a
// fixed ~25 µs to sign and ~50-90 µs to verify a 64-byte message, instead
// of ~2.4 ms with Ed25519ph. Security rests on SHA-256's collision
// resistance (128 bits), the same level as Ed25519's.
const (
	frameLengthSize = 4
	frameHeaderSize = 4 + 4 + 16 + 8
	signatureSize   = ed25519.SignatureSize

	// frameOverhead is what a frame adds to a payload on the wire.
	frameOverhead = frameLengthSize + frameHeaderSize + signatureSize
	frameBodyMin  = frameHeaderSize + signatureSize
	frameBodyMax  = frameBodyMin + model.MessageSizeMax

	signDomain     = "tigerchat/transport/frame/v1\x00"
	signedInputLen = len(signDomain) + sha256.Size
)

// SessionID names one connection; both ends derive the same value.
type SessionID [16]byte

// frameHeader is the decoded signed header of a frame.
type frameHeader struct {
	From    model.Address
	To      model.Address
	Session SessionID
	Counter uint64
}

// Frame decode errors.
var (
	errFrameShort    = errors.New("transport: frame shorter than header and signature")
	errFrameOversize = errors.New("transport: frame longer than the maximum")
)

// newFrame allocates a whole frame for payload, length field set, header and
// signature left for sealFrame.
func newFrame(payload []byte) []byte {
	if len(payload) > model.MessageSizeMax {
		panic("transport: payload exceeds model.MessageSizeMax")
	}
	frame := make([]byte, frameOverhead+len(payload))
	binary.LittleEndian.PutUint32(frame, uint32(len(frame)-frameLengthSize))
	copy(frame[frameLengthSize+frameHeaderSize:], payload)
	return frame
}

// sealFrame writes h into a frame from newFrame and signs it in place.
func sealFrame(frame []byte, h frameHeader, key ed25519.PrivateKey) {
	if len(frame) < frameOverhead {
		panic("transport: sealing a frame shorter than its overhead")
	}
	if int(binary.LittleEndian.Uint32(frame)) != len(frame)-frameLengthSize {
		panic("transport: sealing a frame whose length field is wrong")
	}
	b := frame[frameLengthSize:]
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(h.From))
	le.PutUint32(b[4:], uint32(h.To))
	copy(b[8:24], h.Session[:])
	le.PutUint64(b[24:], h.Counter)
	signed := b[:len(b)-signatureSize]
	input := signedInput(signed)
	copy(b[len(signed):], ed25519.Sign(key, input[:]))
}

// signedInput is what Ed25519 signs for a frame body's signed bytes.
func signedInput(signed []byte) [signedInputLen]byte {
	var input [signedInputLen]byte
	copy(input[:], signDomain)
	digest := sha256.Sum256(signed)
	copy(input[len(signDomain):], digest[:])
	return input
}

// decodeFrame splits a frame body (the bytes after the length field) into its
// header, payload and signature without verifying anything. payload and
// signature alias body.
func decodeFrame(body []byte) (h frameHeader, payload, signature []byte, err error) {
	if len(body) < frameBodyMin {
		return h, nil, nil, errFrameShort
	}
	if len(body) > frameBodyMax {
		return h, nil, nil, errFrameOversize
	}
	le := binary.LittleEndian
	h.From = model.Address(le.Uint32(body[0:]))
	h.To = model.Address(le.Uint32(body[4:]))
	copy(h.Session[:], body[8:24])
	h.Counter = le.Uint64(body[24:])
	payload = body[frameHeaderSize : len(body)-signatureSize]
	signature = body[len(body)-signatureSize:]
	return h, payload, signature, nil
}

// verifyFrame checks a frame body's signature against the sender's key.
func verifyFrame(public ed25519.PublicKey, body []byte) bool {
	if len(body) < frameBodyMin {
		return false
	}
	signed := body[:len(body)-signatureSize]
	input := signedInput(signed)
	return ed25519.Verify(public, input[:], body[len(signed):])
}

// frameReader splits a stream into frame bodies.
type frameReader struct {
	r      *bufio.Reader
	prefix [frameLengthSize]byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, readBufferSize)}
}

// next reads one frame and returns its body in a new buffer (the receiver
// hands the payload to deliver, which owns it). It checks the length before
// allocating: errFrameOversize and errFrameShort mean the stream is broken
// and the connection must go. io.EOF means a clean end between frames.
func (fr *frameReader) next() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.prefix[:]); err != nil {
		return nil, err
	}
	length := binary.LittleEndian.Uint32(fr.prefix[:])
	if length > frameBodyMax {
		return nil, fmt.Errorf("frame length %d: %w", length, errFrameOversize)
	}
	if length < frameBodyMin {
		return nil, fmt.Errorf("frame length %d: %w", length, errFrameShort)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(fr.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("frame body: %w", err)
	}
	return body, nil
}
