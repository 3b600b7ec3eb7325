package chain

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned once a chain or the registry is closed.
	ErrClosed = errors.New("chain: closed")
	// ErrNotLocked is returned by [Chain.Unlock] for a key nobody holds.
	ErrNotLocked = errors.New("chain: key is not locked")
	// ErrNotLockOwner is returned by [Chain.Unlock] for a key that another
	// connection holds.
	ErrNotLockOwner = errors.New("chain: key is locked by another connection")
	// ErrNotFound is matched by the error of [Registry.AcquireExisting]
	// for a chain that does not exist.
	ErrNotFound = errors.New("chain: no such chain")
	// ErrBeyondHead is returned by [Chain.Subscribe] for a start offset
	// past the chain's head; it is wrapped in a *BeyondHeadError.
	ErrBeyondHead = errors.New("chain: start offset beyond head")
)

// Code says why an append was refused. Codes are stable: netio maps each
// one to a wire code.
type Code uint8

// Append refusal codes.
const (
	CodeInvalid   Code = iota + 1 // an event does not decode or breaks a structural rule
	CodeFuture                    // an event's client timestamp is too far in the future
	CodeDuplicate                 // an event is already stored, or twice in the batch, and the batch is not a pure retry
	CodeConflict                  // the expected next offset does not hold
	CodeRejected                  // the validation hook refused an event
	CodeAborted                   // an earlier batch of the same writer failed
	CodeStorage                   // the log failed (poisoned); nothing more is accepted
	CodeClosed                    // the chain is closing
	CodeTooLarge                  // the batch exceeds a size limit
	// CodeUnavailable: the log cannot store the batch now (no space, no
	// file descriptors, no permission for its next segment) but is not
	// poisoned; nothing was stored and sending the batch again later may
	// succeed.
	CodeUnavailable
)

var codeNames = [...]string{
	CodeInvalid:     "invalid",
	CodeFuture:      "future",
	CodeDuplicate:   "duplicate",
	CodeConflict:    "conflict",
	CodeRejected:    "rejected",
	CodeAborted:     "aborted",
	CodeStorage:     "storage",
	CodeClosed:      "closed",
	CodeTooLarge:    "too-large",
	CodeUnavailable: "unavailable",
}

// String returns the code's name.
func (c Code) String() string {
	if int(c) < len(codeNames) && codeNames[c] != "" {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", uint8(c))
}

// CommitError says why a batch was refused; nothing of the batch is stored.
type CommitError struct {
	Code   Code
	Index  int    // index of the failing event in the batch, -1 if the batch as a whole
	Head   uint64 // the chain's next offset when refused, whatever the code (CodeStorage from the log: where the batch would have started)
	Reason string // human-readable, safe to send to the client
}

func (e *CommitError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("chain: %s: event %d: %s", e.Code, e.Index, e.Reason)
	}
	return fmt.Sprintf("chain: %s: %s", e.Code, e.Reason)
}

// temporary reports whether a log error is retryable: it has a method
// Temporary() bool that returns true (mmaplog's *UnavailableError does).
// The log then is not poisoned, and the batches it failed gave their
// offsets back.
func temporary(err error) bool {
	t, ok := errors.AsType[interface {
		error
		Temporary() bool
	}](err)
	return ok && t.Temporary()
}

// storageError is the refusal of a batch that the log failed with err.
func storageError(err error, head uint64) *CommitError {
	if temporary(err) {
		return &CommitError{Code: CodeUnavailable, Index: -1, Head: head, Reason: "log temporarily unavailable, retry later: " + err.Error()}
	}
	return &CommitError{Code: CodeStorage, Index: -1, Head: head, Reason: "log failed: " + err.Error()}
}

// RejectError is what a [Validator] returns to refuse a batch: Index names
// the failing event (-1 for the batch as a whole).
type RejectError struct {
	Index  int
	Reason string
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("chain: event %d rejected: %s", e.Index, e.Reason)
}

// BeyondHeadError is returned by [Chain.Subscribe] when the requested start
// offset lies past the chain's head. errors.Is(err, ErrBeyondHead) is true.
type BeyondHeadError struct {
	From, Head uint64
}

func (e *BeyondHeadError) Error() string {
	return fmt.Sprintf("chain: start offset %d beyond head %d", e.From, e.Head)
}

// Is reports whether target is [ErrBeyondHead].
func (e *BeyondHeadError) Is(target error) bool { return target == ErrBeyondHead }
