package chain

import (
	"crypto/sha256"
	"errors"
	"time"
)

// Hash identifies an event: proto's event hash.
type Hash = [32]byte

// Event is one event of a batch as the validation hook sees it.
type Event struct {
	Payload []byte    // the encoded event, as received
	Hash    Hash      // its hash (identity, duplicate detection, signatures)
	Time    time.Time // the client timestamp, if HasTime
	HasTime bool
}

// inspect decodes payload structurally and returns what the write path
// needs. TODO(proto): replaced by proto's event decoder once it lands.
func inspect(payload []byte) (Event, error) {
	if len(payload) == 0 {
		return Event{}, errors.New("empty event")
	}
	return Event{Payload: payload, Hash: sha256.Sum256(payload)}, nil
}
