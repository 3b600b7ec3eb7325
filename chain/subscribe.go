package chain

import (
	"context"
	"fmt"
	"io"
	"time"
)

// SubscribeOptions say where a subscription starts and what it delivers.
type SubscribeOptions struct {
	// From is the first offset wanted (ignored if ByTime or !History).
	From uint64
	// ByTime starts at the first event stored at or after FromTime
	// (server time) instead of at From.
	ByTime   bool
	FromTime time.Time
	// History delivers the stored events from the start up to the head at
	// subscription time; without it the subscription starts at the head.
	History bool
	// Live keeps delivering events as they become durable after the
	// history; without it the subscription ends at the history's end.
	Live bool
	// BatchEvents and BatchBytes bound one Next (defaults from Config).
	BatchEvents int
	BatchBytes  int
}

// Subscription is a cursor over a chain: first the history (offsets
// Start() up to HistoryEnd()), then, if live, every event as it becomes
// durable. History and live events come from the same cursor, so the
// switch has no gap and no duplicate, and a subscriber that does not call
// Next only lags: it costs the writers nothing and holds at most one batch.
// A Subscription is not safe for concurrent use, Close included: cancel the
// context given to a waiting Next to stop it from another goroutine.
type Subscription struct {
	c        *Chain
	cur      Cursor
	start    uint64
	end      uint64 // history end: head at subscription time
	next     uint64 // offset of the next record Next returns
	live     bool
	maxBytes int
	buf      []Record
	rest     []Record // records read past the history end, still valid
	closed   bool
}

// Subscribe opens a subscription. It returns a *BeyondHeadError if
// opts.From is past the head, or ErrClosed.
func (c *Chain) Subscribe(opts SubscribeOptions) (*Subscription, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	head := c.log.Head()
	from := opts.From
	switch {
	case !opts.History:
		from = head
	case opts.ByTime:
		off, err := c.log.SeekTime(opts.FromTime.UnixNano())
		if err != nil {
			return nil, fmt.Errorf("chain %s: seek time: %w", c.key, err)
		}
		from = min(off, head)
	case from > head:
		return nil, &BeyondHeadError{From: from, Head: head}
	}
	cur, err := c.log.NewCursor(from)
	if err != nil {
		return nil, fmt.Errorf("chain %s: open cursor at %d: %w", c.key, from, err)
	}
	n := opts.BatchEvents
	if n <= 0 {
		n = c.cfg.BatchEvents
	}
	b := opts.BatchBytes
	if b <= 0 {
		b = c.cfg.BatchBytes
	}
	c.subs.Add(1)
	return &Subscription{c: c, cur: cur, start: from, end: head, next: from, live: opts.Live,
		maxBytes: b, buf: make([]Record, 0, n)}, nil
}

// Start returns the offset of the first event the subscription delivers.
func (s *Subscription) Start() uint64 { return s.start }

// HistoryEnd returns the head at subscription time: the history is the
// offsets [Start, HistoryEnd).
func (s *Subscription) HistoryEnd() uint64 { return s.end }

// Position returns the offset of the next event Next will return.
func (s *Subscription) Position() uint64 { return s.next }

// InHistory reports whether history events remain to be read.
func (s *Subscription) InHistory() bool { return s.next < s.end }

// Next returns the next batch of events in offset order. While history
// remains, it returns at once and never crosses HistoryEnd, so the caller
// can mark the end of history exactly. After the history it returns io.EOF
// if the subscription is not live; otherwise it waits until at least one
// event is durable, ctx is done (ctx.Err()), the chain closes (ErrClosed) or
// its log fails (that error). The records and their payloads stay valid
// only until the next call to Next or Close.
func (s *Subscription) Next(ctx context.Context) ([]Record, error) {
	if s.closed {
		return nil, ErrClosed
	}
	if len(s.rest) > 0 {
		recs := s.rest
		s.rest = nil
		s.next = recs[len(recs)-1].Offset + 1
		return recs, nil
	}
	if !s.live && s.next >= s.end {
		return nil, io.EOF
	}
	for {
		notify := s.c.log.Notify()
		recs, err := s.cur.Next(s.buf, s.maxBytes)
		if err != nil && len(recs) > 0 {
			// Records before damage: deliver them; the next read
			// stops at the damage again and reports it.
			err = nil
		}
		if err != nil {
			if s.c.isClosed() { // the log was closed with the chain
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("chain %s: read at %d: %w", s.c.key, s.next, err)
		}
		if len(recs) > 0 {
			if recs[0].Offset != s.next {
				return nil, fmt.Errorf("chain %s: cursor returned offset %d, expected %d", s.c.key, recs[0].Offset, s.next)
			}
			if s.next < s.end {
				// Split at the history end; the rest stays valid until
				// the next cursor read, which only happens after it.
				n := int(min(uint64(len(recs)), s.end-s.next))
				recs, s.rest = recs[:n], recs[n:]
				if len(s.rest) == 0 {
					s.rest = nil
				}
			}
			s.next = recs[len(recs)-1].Offset + 1
			return recs, nil
		}
		if s.next < s.end {
			return nil, fmt.Errorf("chain %s: history ends at %d, before head %d", s.c.key, s.next, s.end)
		}
		if err := s.c.log.Err(); err != nil {
			return nil, fmt.Errorf("chain %s: log failed: %w", s.c.key, err)
		}
		// Idle: wait without taking the chain's append lock (c.mu, held
		// while a batch is validated). Closing the chain closes its log,
		// which closes notify; the cursor then reports it above.
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close releases the subscription's cursor. Calling it more than once is
// harmless.
func (s *Subscription) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.rest = nil
	s.c.subs.Add(-1)
	return s.cur.Close()
}
