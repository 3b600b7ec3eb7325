package client

import "sync"

// outQueue is the unbounded FIFO of encoded frames between the goroutines
// that issue requests and the connection's writer goroutine. Pushing never
// blocks, so it is safe under the client's mutex (which is how request order
// is kept across reconnects); what bounds it is the callers: the append
// window, one subscribe per channel, one lock request per caller.
//
// Safe for concurrent use.
type outQueue struct {
	mu     sync.Mutex
	items  [][]byte
	closed bool
	wake   chan struct{} // capacity 1: "items may be non-empty or closed"
}

func newOutQueue() *outQueue {
	return &outQueue{wake: make(chan struct{}, 1)}
}

// push appends one frame body and wakes the writer; it reports false if
// the queue is closed. The queue owns body from then on.
func (q *outQueue) push(body []byte) bool {
	if !q.pushQuiet(body) {
		return false
	}
	q.signal()
	return true
}

// pushQuiet is push without waking the writer: the caller must then call
// conn.kick, which writes the queue itself or wakes the writer.
func (q *outQueue) pushQuiet(body []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.items = append(q.items, body)
	return true
}

// signal wakes the writer.
func (q *outQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pending reports whether frames are queued.
func (q *outQueue) pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) > 0
}

// take moves every queued frame into dst (which it returns) and reports
// whether the queue is closed and empty.
func (q *outQueue) take(dst [][]byte) ([][]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.items...)
	clear(q.items)
	q.items = q.items[:0]
	return dst, q.closed && len(dst) == 0
}

// close stops further pushes; frames already queued are still taken.
func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
