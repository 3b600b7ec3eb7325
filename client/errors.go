package client

import (
	"errors"
	"fmt"

	"github.com/atedb/atedb/proto"
)

var (
	// ErrClosed is returned by every call on a [Client], [Chain] or
	// [Subscription] after its Close, and by requests that Close cut short.
	ErrClosed = errors.New("client: closed")
	// ErrConnectionLost is returned by every pending request when the
	// connection ends and reconnecting is disabled (see [WithReconnect]) or
	// gives up (see [WithReconnectLimit]), and by [Client.Err] afterwards. The outcome of an append that fails
	// this way is unknown; a lock that fails this way is not held (the
	// server releases a connection's locks when it ends).
	ErrConnectionLost = errors.New("client: connection lost")
	// ErrLockLost is returned by Unlock for a lock taken on an earlier
	// connection: the server released it when that connection ended.
	ErrLockLost = errors.New("client: lock lost with its connection")
	// ErrConflict is matched (errors.Is) by a [*CommitError] of code
	// proto.CodeConflict: the batch's condition failed, the chain's next
	// offset was not the one expected. The error's Head field holds the
	// chain's next offset.
	ErrConflict = errors.New("client: append condition failed")
	// ErrAborted is matched by a [*CommitError] of code proto.CodeAborted:
	// the batch was refused only because an earlier batch of the same
	// pipeline failed (nothing is wrong with it; sending it again may
	// succeed).
	ErrAborted = errors.New("client: aborted after an earlier batch failed")
	// ErrDuplicate is matched by a [*CommitError] of code
	// proto.CodeDuplicate: an event of the batch (Index) is already stored,
	// or appears twice in the batch, and the batch is not an exact retry of
	// stored events. A batch is stored whole or not at all, so the server
	// does not store the new events of a batch that repeats old ones: send
	// the new events alone.
	ErrDuplicate = errors.New("client: batch repeats stored events")
	// ErrUnavailable is matched by a [*CommitError] of code
	// proto.CodeStorageUnavailable: the server could not store the batch
	// for a reason that passes (no disk space, no file descriptors) and
	// stored nothing of it; sending it again later may succeed.
	ErrUnavailable = errors.New("client: storage temporarily unavailable")
	// ErrProtocol is matched by a [*ProtocolError].
	ErrProtocol = errors.New("client: protocol violation by the server")
)

// ServerError is a refusal sent by the server: a refusing HelloAck, a
// Fatal, a channel-scoped Error, a failed LockResult or a server-ended
// subscription. Op names the request ("hello", "open", "subscribe",
// "lock", ...). errors.Is(err, &proto.CodeError{Code: c}) matches the code.
type ServerError struct {
	Op     string
	Code   proto.ErrorCode
	Reason string
	// Fatal is set when the server ended the connection with it.
	Fatal bool
}

func (e *ServerError) Error() string {
	s := "client: " + e.Op + " refused by the server: " + e.Code.String()
	if e.Fatal {
		s = "client: server ended the connection during " + e.Op + ": " + e.Code.String()
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap returns the code and reason as a *proto.CodeError.
func (e *ServerError) Unwrap() error { return &proto.CodeError{Code: e.Code, Reason: e.Reason} }

// CommitError is the server's refusal of one Append batch: nothing of the
// batch was stored. errors.Is matches [ErrConflict] (Code is
// proto.CodeConflict), [ErrAborted] (Code is proto.CodeAborted),
// [ErrDuplicate] (Code is proto.CodeDuplicate), [ErrUnavailable] (Code is
// proto.CodeStorageUnavailable), and
// &proto.CodeError{Code: c}.
type CommitError struct {
	CommitID uint64
	Code     proto.ErrorCode
	Reason   string
	// Index is the failing event's position in the batch, or -1 when the
	// refusal is about the batch as a whole.
	Index int
	// Head is the chain's next offset when the batch was refused.
	Head uint64
	// Aborted is set when Code is proto.CodeAborted: the batch was refused
	// only because an earlier batch of the same pipeline failed; retrying
	// it may succeed.
	Aborted bool
}

func (e *CommitError) Error() string {
	s := fmt.Sprintf("client: append %d refused: %s", e.CommitID, e.Code)
	if e.Code == proto.CodeAborted {
		s = fmt.Sprintf("client: append %d aborted (an earlier batch failed)", e.CommitID)
	}
	if e.Index >= 0 {
		s += fmt.Sprintf(": event %d", e.Index)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is reports whether target is ErrConflict, ErrAborted, ErrDuplicate or
// ErrUnavailable as
// described on [CommitError].
func (e *CommitError) Is(target error) bool {
	switch target {
	case ErrConflict:
		return e.Code == proto.CodeConflict
	case ErrAborted:
		return e.Code == proto.CodeAborted
	case ErrDuplicate:
		return e.Code == proto.CodeDuplicate
	case ErrUnavailable:
		return e.Code == proto.CodeStorageUnavailable
	}
	return false
}

// Unwrap returns the code and reason as a *proto.CodeError.
func (e *CommitError) Unwrap() error { return &proto.CodeError{Code: e.Code, Reason: e.Reason} }

// ProtocolError reports a message from the server that this client cannot
// accept (undecodable, unexpected, or out of order). The connection is
// dropped. errors.Is(err, ErrProtocol) is true.
type ProtocolError struct {
	Msg    string // message type or "frame"
	Reason string
	Err    error // the decoding error, if any
}

func (e *ProtocolError) Error() string {
	s := "client: protocol violation by the server: " + e.Msg + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrProtocol.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

// Unwrap returns the decoding error, if any.
func (e *ProtocolError) Unwrap() error { return e.Err }

// permanent reports whether err means reconnecting cannot help: the
// server refuses this client or this chain, or the two speak different
// protocols, or a security check failed.
func permanent(err error) bool {
	var se *ServerError
	if errors.As(err, &se) {
		switch se.Code {
		case proto.CodeTooManyConnections, proto.CodeShuttingDown, proto.CodeTimeout,
			proto.CodeStorageFailure, proto.CodeInternal:
			return false
		}
		return true
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return true
	}
	var he *handshakeSecurityError
	return errors.As(err, &he)
}

// handshakeSecurityError wraps a failed security check of the handshake
// (downgrade, pinned fingerprint, bad identity signature): never retried.
type handshakeSecurityError struct{ err error }

func (e *handshakeSecurityError) Error() string { return e.err.Error() }
func (e *handshakeSecurityError) Unwrap() error { return e.err }
