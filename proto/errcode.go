package proto

import "strconv"

// ErrorCode is the closed set of error codes carried by Fatal, Error,
// CommitError, Unsubscribed, LockResult, ProveResult and a refusing
// HelloAck. It is encoded as a uvarint; a decoder rejects values it does
// not define (new codes come with a new protocol version). Human-readable
// reasons travel beside the code; clients act on the code only.
type ErrorCode uint16

// Error codes: part of the wire format; never change a value.
const (
	CodeOK                 ErrorCode = 0  // success (LockResult, ProveResult, Unsubscribed, HelloAck)
	CodeMalformed          ErrorCode = 1  // a message or event failed to decode
	CodeUnsupportedVersion ErrorCode = 2  // protocol or event encoding version not spoken
	CodeUnknownMessage     ErrorCode = 3  // message type not defined by the negotiated version
	CodeFrameTooLarge      ErrorCode = 4  // a frame exceeded the receiver's limit
	CodeBatchTooLarge      ErrorCode = 5  // an Append carries more events or bytes than allowed
	CodeInvalidChainKey    ErrorCode = 6  // chain key refused by the naming policy
	CodeUnknownChannel     ErrorCode = 7  // the channel is not open
	CodeChannelInUse       ErrorCode = 8  // Open of a channel that is already open
	CodeConflict           ErrorCode = 9  // Append condition failed: the chain's next offset differs
	CodeClockSkew          ErrorCode = 10 // an event's client timestamp is too far in the future
	CodeValidationFailed   ErrorCode = 11 // an event broke the chain's rules (signature, authority...)
	CodeDenied             ErrorCode = 12 // not authorised
	CodeLockHeld           ErrorCode = 13 // Lock of a key another connection holds
	CodeNotLockOwner       ErrorCode = 14 // Unlock of a key this connection does not hold
	CodeTooManyConnections ErrorCode = 15 // connection limit reached
	CodeTooManyChannels    ErrorCode = 16 // channel or subscription limit reached
	CodeStorageFailure     ErrorCode = 17 // the chain's log failed (poisoned); nothing was stored
	CodeShuttingDown       ErrorCode = 18 // the server is stopping
	CodeTimeout            ErrorCode = 19 // an operation (handshake, auth lookup, idle) timed out
	CodeInternal           ErrorCode = 20 // a bug or unexpected condition on the sender's side
	CodeNotSubscribed      ErrorCode = 21 // Unsubscribe without a subscription on that channel
	CodeAlreadySubscribed  ErrorCode = 22 // Subscribe on a channel that already has a subscription
	CodeLagging            ErrorCode = 23 // a subscriber fell too far behind and was dropped
	CodeHandshakeFailed    ErrorCode = 24 // key exchange or server identity check failed
	CodeAborted            ErrorCode = 25 // an earlier Append of the channel failed; see Append.Restart
	CodeNoSuchChain        ErrorCode = 26 // the chain does not exist and the connection asked not to create chains
	CodeDuplicate          ErrorCode = 27 // an event of an Append is already stored, or twice in it, and the batch is not an exact retry
	// CodeStorageUnavailable: the chain's log cannot store the batch now
	// (no space, no file descriptors, no permission for its next segment)
	// but is not poisoned; nothing was stored, sending it again later may
	// succeed.
	CodeStorageUnavailable ErrorCode = 28

	numCodes = 29
)

var codeNames = [numCodes]string{
	CodeOK:                 "ok",
	CodeMalformed:          "malformed",
	CodeUnsupportedVersion: "unsupported version",
	CodeUnknownMessage:     "unknown message",
	CodeFrameTooLarge:      "frame too large",
	CodeBatchTooLarge:      "batch too large",
	CodeInvalidChainKey:    "invalid chain key",
	CodeUnknownChannel:     "unknown channel",
	CodeChannelInUse:       "channel in use",
	CodeConflict:           "conflict",
	CodeClockSkew:          "clock skew",
	CodeValidationFailed:   "validation failed",
	CodeDenied:             "denied",
	CodeLockHeld:           "lock held",
	CodeNotLockOwner:       "not lock owner",
	CodeTooManyConnections: "too many connections",
	CodeTooManyChannels:    "too many channels",
	CodeStorageFailure:     "storage failure",
	CodeShuttingDown:       "shutting down",
	CodeTimeout:            "timeout",
	CodeInternal:           "internal error",
	CodeNotSubscribed:      "not subscribed",
	CodeAlreadySubscribed:  "already subscribed",
	CodeLagging:            "subscriber lagging",
	CodeHandshakeFailed:    "handshake failed",
	CodeAborted:            "aborted",
	CodeNoSuchChain:        "no such chain",
	CodeDuplicate:          "duplicate",
	CodeStorageUnavailable: "storage unavailable",
}

// AllErrorCodes returns every defined code in ascending order.
func AllErrorCodes() []ErrorCode {
	out := make([]ErrorCode, numCodes)
	for i := range out {
		out[i] = ErrorCode(i)
	}
	return out
}

// Valid reports whether c is a defined code.
func (c ErrorCode) Valid() bool { return c < numCodes }

// String returns the code's name, or "ErrorCode(n)" for undefined values.
func (c ErrorCode) String() string {
	if c.Valid() {
		return codeNames[c]
	}
	return "ErrorCode(" + strconv.Itoa(int(c)) + ")"
}

// CodeError is a received error code with its reason, usable as a Go error
// (for example by a client turning a CommitError into a return value).
type CodeError struct {
	Code   ErrorCode
	Reason string
}

// Error describes the error.
func (e *CodeError) Error() string {
	if e.Reason == "" {
		return "atedb: " + e.Code.String()
	}
	return "atedb: " + e.Code.String() + ": " + e.Reason
}

// Is makes errors.Is(err, &CodeError{Code: c}) match any CodeError with code c.
func (e *CodeError) Is(target error) bool {
	t, ok := target.(*CodeError)
	return ok && t.Code == e.Code && t.Reason == ""
}
