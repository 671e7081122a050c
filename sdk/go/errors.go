package tigerchat

import (
	"errors"
	"fmt"
	"time"
)

// Code is an error code of the protocol (docs/protocol.md §5), or one of the
// SDK's own codes (CodeConnectionLost, CodeDeadlineExceeded, CodeClosed).
type Code string

// Every code the edge and the cluster document.
const (
	CodeMissingToken         Code = "missing_token"
	CodeMalformedToken       Code = "malformed_token"
	CodeInvalidSignature     Code = "invalid_signature"
	CodeTokenExpired         Code = "token_expired"
	CodeTokenNotYetValid     Code = "token_not_yet_valid"
	CodeWrongAudience        Code = "wrong_audience"
	CodeWrongTenant          Code = "wrong_tenant"
	CodeInvalidClaims        Code = "invalid_claims"
	CodeForbiddenRoom        Code = "forbidden_room"
	CodeBadRequest           Code = "bad_request"
	CodeUnknownCommand       Code = "unknown_command"
	CodeRequestTooLarge      Code = "request_too_large"
	CodeRateLimited          Code = "rate_limited"
	CodeTooManyConnections   Code = "too_many_connections"
	CodeTooManySubscriptions Code = "too_many_subscriptions"
	CodeAlreadySubscribed    Code = "already_subscribed"
	CodeNotSubscribed        Code = "not_subscribed"
	CodeUnavailable          Code = "unavailable"
	CodeNotFound             Code = "not_found"
	CodeInternal             Code = "internal"

	CodeInvalidTenant         Code = "invalid_tenant"
	CodeInvalidUser           Code = "invalid_user"
	CodeInvalidRoom           Code = "invalid_room"
	CodeReservedRoom          Code = "reserved_room"
	CodeInvalidIdempotencyKey Code = "invalid_idempotency_key"
	CodeBodyEmpty             Code = "body_empty"
	CodeBodyTooLarge          Code = "body_too_large"
	CodeInvalidLimit          Code = "invalid_limit"
	CodeInvalidRange          Code = "invalid_range"
	CodeInvalidSeq            Code = "invalid_seq"
	CodeInvalidFlags          Code = "invalid_flags"
	CodeAuditRetention        Code = "audit_retention"
	CodeDirectSelf            Code = "direct_self"
	CodeUnknownRoom           Code = "unknown_room"
	CodeUnknownThread         Code = "unknown_thread"
	CodeNotMember             Code = "not_member"
	CodePrivateRoom           Code = "private_room"
	CodeRoomExists            Code = "room_exists"
	CodeDirectRoom            Code = "direct_room"
	CodeSeqBeyondHead         Code = "seq_beyond_head"
	CodeTenantsFull           Code = "tenants_full"
	CodeRoomsFull             Code = "rooms_full"
	CodeTenantFull            Code = "tenant_full"
	CodeMembersFull           Code = "members_full"
	CodeThreadsFull           Code = "threads_full"
	CodeStorageUnavailable    Code = "storage_unavailable"
	CodeAuditRoom             Code = "audit_room"
	CodeNotCreator            Code = "not_creator"
	CodeDuplicateRemoved      Code = "duplicate_removed"
	CodeStorageFull           Code = "storage_full"
	CodeMalformed             Code = "malformed"
	CodeUnknownOperation      Code = "unknown_operation"

	// CodeConnectionLost: the connection ended before the reply came; the
	// command's outcome is unknown (posts are retried with their key).
	CodeConnectionLost Code = "connection_lost"
	// CodeDeadlineExceeded: a post's retries ran out of time with its
	// outcome still unknown.
	CodeDeadlineExceeded Code = "deadline_exceeded"
	// CodeClosed: the client was closed.
	CodeClosed Code = "closed"
	// CodeHashMismatch: a message does not chain to the one before it, or its
	// hash is not the SHA-256 of its fields (only with Options.VerifyHashes
	// or VerifyChain).
	CodeHashMismatch Code = "hash_mismatch"
)

// Error is a refusal by the edge or the cluster, or an SDK error with one of
// the SDK's codes. Local is true when the SDK refused the call itself,
// before sending anything (a malformed argument).
type Error struct {
	Code       Code
	Message    string
	RetryAfter time.Duration // from retry_after_ms (rate_limited, unavailable)
	Local      bool
}

func (e *Error) Error() string {
	s := "tigerchat: " + string(e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	return s
}

// Is makes errors.Is(err, &Error{Code: c}) match any error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Temporary reports whether retrying the same command later may succeed.
func (e *Error) Temporary() bool {
	switch e.Code {
	case CodeRateLimited, CodeUnavailable, CodeTooManyConnections, CodeConnectionLost:
		return true
	}
	return false
}

// CodeOf returns err's code, or "" when err is not an *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsCode reports whether err is an *Error with code c.
func IsCode(err error, c Code) bool { return CodeOf(err) == c }

func localError(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...), Local: true}
}

type wireError struct {
	Code         Code   `json:"code"`
	Message      string `json:"message"`
	RetryAfterMS int64  `json:"retry_after_ms"`
}

func (w *wireError) toError() *Error {
	return &Error{Code: w.Code, Message: w.Message, RetryAfter: time.Duration(w.RetryAfterMS) * time.Millisecond}
}
