// Package gather holds the one wait that group commit needs in two places
// (a log's writer and the commit journal's leader): letting the appenders
// that the previous group just released queue their next request before
// the committer takes the queue.
package gather

import (
	"runtime"
	"sync"
	"time"
)

// MaxWait bounds one WhileGrowing call.
const MaxWait = 200 * time.Microsecond

// WhileGrowing yields the processor while the queue q (guarded by mu) keeps
// growing: at most four times and MaxWait in all. Without it, concurrent
// appenders split into alternating half-size groups (one queues while the
// other syncs), and each sync commits half as much.
func WhileGrowing[T any](mu *sync.Mutex, q *[]T) {
	mu.Lock()
	n := len(*q)
	mu.Unlock()
	t0 := time.Now()
	for range 4 {
		if time.Since(t0) > MaxWait {
			return
		}
		runtime.Gosched()
		mu.Lock()
		m := len(*q)
		mu.Unlock()
		if m == n {
			return
		}
		n = m
	}
}
