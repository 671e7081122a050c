package disk

import (
	"errors"
	"fmt"
)

// Kinds of data file errors, for callers that branch with errors.Is. The
// message of each error is one line that says what is wrong and what to do.
var (
	ErrNotFormatted = errors.New("data file not formatted")
	ErrExists       = errors.New("data file exists")
	ErrIdentity     = errors.New("data file belongs to another replica")
	ErrSize         = errors.New("data file has the wrong size")
	ErrTruncated    = errors.New("data file truncated")
	ErrVersion      = errors.New("data file format version unsupported")
	ErrCorrupt      = errors.New("data file header corrupt")
	ErrWrongKey     = errors.New("data file key mismatch")
	ErrEncryption   = errors.New("data file encryption mismatch")
	ErrInUse        = errors.New("data file in use")
)

// Error is a data file error: Msg for humans, Kind for errors.Is.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func newError(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
