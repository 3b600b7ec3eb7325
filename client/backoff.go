package client

import (
	"math/rand/v2"
	"time"
)

// backoff computes reconnect delays: it starts at min, doubles after each
// failed attempt up to max, and adds up to 25% random jitter so that many
// clients cut off by one server restart do not redial in lockstep. The
// zero value is not usable; build it with newBackoff. Not safe for
// concurrent use (the reconnect loop owns it).
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff(lo, hi time.Duration) *backoff {
	if lo <= 0 {
		lo = 50 * time.Millisecond
	}
	if hi < lo {
		hi = lo
	}
	return &backoff{min: lo, max: hi, next: lo}
}

// Delay returns the delay before the next attempt and advances the schedule.
func (b *backoff) Delay() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	jitter := time.Duration(rand.Int64N(int64(d)/4 + 1))
	return d + jitter
}

// Reset returns the schedule to its start, after a successful connection.
func (b *backoff) Reset() { b.next = b.min }
