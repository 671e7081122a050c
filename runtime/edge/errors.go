package edge

import (
	"fmt"
	"net/http"

	"tigerchat/model/chat"
)

// Error is a refusal sent to a client: a stable code (docs/protocol.md
// lists them all), a human message and the HTTP status of the REST form.
type Error struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
	Status       int    `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Edge error codes. Chat state machine codes (chat.Code names) are passed
// through as they are; see statusOfChat.
const (
	CodeMissingToken         = "missing_token"
	CodeMalformedToken       = "malformed_token"
	CodeInvalidSignature     = "invalid_signature"
	CodeTokenExpired         = "token_expired"
	CodeTokenNotYetValid     = "token_not_yet_valid"
	CodeWrongAudience        = "wrong_audience"
	CodeWrongTenant          = "wrong_tenant"
	CodeInvalidClaims        = "invalid_claims"
	CodeForbiddenRoom        = "forbidden_room"
	CodeBadRequest           = "bad_request"
	CodeInvalidRange         = "invalid_range"
	CodeUnknownCommand       = "unknown_command"
	CodeRequestTooLarge      = "request_too_large"
	CodeRateLimited          = "rate_limited"
	CodeTooManyConnections   = "too_many_connections"
	CodeTooManySubscriptions = "too_many_subscriptions"
	CodeAlreadySubscribed    = "already_subscribed"
	CodeNotSubscribed        = "not_subscribed"
	CodeUnavailable          = "unavailable"
	CodeNotFound             = "not_found"
	CodeInternal             = "internal"
)

var edgeStatus = map[string]int{
	CodeMissingToken: 401, CodeMalformedToken: 401, CodeInvalidSignature: 401,
	CodeTokenExpired: 401, CodeTokenNotYetValid: 401, CodeWrongAudience: 401,
	CodeWrongTenant: 401, CodeInvalidClaims: 401, CodeForbiddenRoom: 403,
	CodeBadRequest: 400, CodeInvalidRange: 400, CodeUnknownCommand: 400, CodeRequestTooLarge: 413,
	CodeRateLimited: 429, CodeTooManyConnections: 503, CodeTooManySubscriptions: 409,
	CodeAlreadySubscribed: 409, CodeNotSubscribed: 409, CodeUnavailable: 503,
	CodeNotFound: 404, CodeInternal: 500,
}

// edgeCodes lists every edge code, for metrics and docs.
func edgeCodes() []string {
	return []string{
		CodeMissingToken, CodeMalformedToken, CodeInvalidSignature, CodeTokenExpired,
		CodeTokenNotYetValid, CodeWrongAudience, CodeWrongTenant, CodeInvalidClaims,
		CodeForbiddenRoom, CodeBadRequest, CodeInvalidRange, CodeUnknownCommand, CodeRequestTooLarge,
		CodeRateLimited, CodeTooManyConnections, CodeTooManySubscriptions,
		CodeAlreadySubscribed, CodeNotSubscribed, CodeUnavailable, CodeNotFound, CodeInternal,
	}
}

func errorf(code, format string, args ...any) *Error {
	status, ok := edgeStatus[code]
	if !ok {
		panic("edge: unknown error code " + code)
	}
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: status}
}

// chatError is the client form of a chat state machine refusal.
func chatError(c chat.Code) *Error {
	return &Error{Code: c.String(), Message: chatMessages[c], Status: statusOfChat(c)}
}

func statusOfChat(c chat.Code) int {
	switch c {
	case chat.CodeUnknownRoom, chat.CodeUnknownThread:
		return http.StatusNotFound
	case chat.CodeNotMember, chat.CodePrivateRoom, chat.CodeNotCreator, chat.CodeAuditRoom:
		return http.StatusForbidden
	case chat.CodeRoomExists, chat.CodeDirectRoom, chat.CodeSeqBeyondHead, chat.CodeDuplicateRemoved:
		return http.StatusConflict
	case chat.CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case chat.CodeTenantsFull, chat.CodeRoomsFull, chat.CodeTenantFull, chat.CodeMembersFull, chat.CodeThreadsFull, chat.CodeStorageFull:
		return http.StatusInsufficientStorage
	case chat.CodeStorageUnavailable:
		return http.StatusServiceUnavailable
	case chat.CodeMalformed, chat.CodeUnknownOperation:
		return http.StatusInternalServerError // the edge encoded a bad request
	}
	return http.StatusBadRequest
}

var chatMessages = map[chat.Code]string{
	chat.CodeMalformed:             "the edge sent a malformed request",
	chat.CodeUnknownOperation:      "the edge sent an unknown operation",
	chat.CodeInvalidTenant:         "tenant id must be 1-64 bytes of [A-Za-z0-9._-]",
	chat.CodeInvalidUser:           "user id must be 1-64 bytes of [A-Za-z0-9._-]",
	chat.CodeInvalidRoom:           "room id must be 1-64 bytes of [A-Za-z0-9._-]",
	chat.CodeReservedRoom:          "room ids starting with dm- are reserved for direct messages",
	chat.CodeInvalidIdempotencyKey: "idempotency key must be 1-64 bytes of [A-Za-z0-9._-]",
	chat.CodeBodyEmpty:             "message body is empty",
	chat.CodeBodyTooLarge:          "message body is larger than the cluster's limit",
	chat.CodeInvalidLimit:          "limit is out of range",
	chat.CodeInvalidSeq:            "seq is out of range",
	chat.CodeInvalidFlags:          "unknown room flags",
	chat.CodeAuditRetention:        "an audit room keeps every message: it takes no retention",
	chat.CodeDirectSelf:            "a direct message needs two distinct users",
	chat.CodeUnknownRoom:           "no such room",
	chat.CodeRoomExists:            "the room already exists",
	chat.CodeNotMember:             "you are not a member of this room",
	chat.CodePrivateRoom:           "the room is private: you need an invitation",
	chat.CodeDirectRoom:            "a direct message's membership is fixed",
	chat.CodeUnknownThread:         "no such thread: its parent seq is beyond the room's head",
	chat.CodeSeqBeyondHead:         "seq is beyond the log's head",
	chat.CodeTenantsFull:           "the shard holds its maximum number of tenants",
	chat.CodeRoomsFull:             "the shard holds its maximum number of rooms",
	chat.CodeTenantFull:            "the tenant holds its maximum number of rooms on this shard",
	chat.CodeMembersFull:           "the room holds its maximum number of members",
	chat.CodeThreadsFull:           "the room holds its maximum number of threads",
	chat.CodeStorageUnavailable:    "a message block could not be read or repaired on the serving replica; retry",
	chat.CodeAuditRoom:             "an audit room's history is immutable: it cannot be deleted or take a retention",
	chat.CodeNotCreator:            "only the room's creator may delete it or change its retention",
	chat.CodeDuplicateRemoved:      "this idempotency key was already posted, and the room's retention has since removed that message; it is not posted again",
	chat.CodeStorageFull:           "the shard's storage is full: nothing was changed; delete rooms or ask the operator for a larger grid",
}

// allCodes lists every code a client can see (edge codes, then chat codes).
func allCodes() []string {
	codes := edgeCodes()
	for c := chat.Code(1); c.Valid(); c++ {
		codes = append(codes, c.String())
	}
	return codes
}
