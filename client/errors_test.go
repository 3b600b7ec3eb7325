package client

import (
	"errors"
	"testing"

	"github.com/atedb/atedb/proto"
)

// TestCommitErrorIs: each CommitError code with a sentinel of its own
// matches that sentinel and no other, and every code matches its
// proto.CodeError.
func TestCommitErrorIs(t *testing.T) {
	sentinels := []error{ErrConflict, ErrAborted, ErrDuplicate, ErrUnavailable}
	cases := map[proto.ErrorCode]error{
		proto.CodeConflict:           ErrConflict,
		proto.CodeAborted:            ErrAborted,
		proto.CodeDuplicate:          ErrDuplicate,
		proto.CodeStorageUnavailable: ErrUnavailable,
		proto.CodeValidationFailed:   nil,
		proto.CodeMalformed:          nil,
	}
	for code, want := range cases {
		t.Run(code.String(), func(t *testing.T) {
			err := error(&CommitError{CommitID: 1, Code: code, Index: -1})
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == want) {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, s == want)
				}
			}
			if !errors.Is(err, &proto.CodeError{Code: code}) {
				t.Errorf("errors.Is(%v, CodeError{%v}) = false", err, code)
			}
		})
	}
}
