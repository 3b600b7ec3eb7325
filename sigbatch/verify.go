package sigbatch

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
)

var (
	// ErrEmpty is returned by [Verifier.Verify] for no jobs: an empty batch
	// never verifies.
	ErrEmpty = errors.New("sigbatch: no signatures to verify")
	// ErrClosed is returned by [Verifier.Verify] after [Verifier.Close].
	ErrClosed = errors.New("sigbatch: verifier closed")
	// ErrUnknownKey is matched by a [*VerifyError] for a job without a
	// public key: the signature names a key the chain has not registered.
	ErrUnknownKey = errors.New("sigbatch: unknown signing key")
)

// Job is one signature to check: Signature must be Key's batch signature
// (trust's layout) over ChainKey and Hashes, and KeyHash (the key hash the
// signature record names) must be Key's hash. A nil Key fails with
// [ErrUnknownKey], so a caller can pass signatures whose key it could not
// find and get one uniform report. Hashes and Signature are only read,
// and only until Verify returns.
type Job struct {
	Key       *trust.PublicKey
	KeyHash   proto.Hash
	ChainKey  string
	Hashes    proto.HashList
	Signature []byte
}

// JobFor returns the job that checks the signature record s of an event
// with key (nil when the chain has no key with hash s.KeyHash).
func JobFor(key *trust.PublicKey, chainKey string, s proto.Signature) Job {
	return Job{Key: key, KeyHash: s.KeyHash, ChainKey: chainKey, Hashes: s.Hashes, Signature: s.Signature}
}

// VerifyError reports the first job (lowest index) that failed. It
// matches trust.ErrBadSignature, trust.ErrEmptyBatch or [ErrUnknownKey].
type VerifyError struct {
	Index   int        // index of the job in the Verify call
	KeyHash proto.Hash // the key hash of the job
	Err     error
}

// Error names the job and the key.
func (e *VerifyError) Error() string {
	return fmt.Sprintf("sigbatch: signature %d by key %s: %v", e.Index, trust.FormatKeyHash(e.KeyHash), e.Err)
}

// Unwrap returns the cause.
func (e *VerifyError) Unwrap() error { return e.Err }

// Verifier checks signatures on a fixed pool of worker goroutines shared
// by every caller: however many batches arrive at once, no more than its
// workers (plus the callers themselves) run verifications, and no goroutine
// is started per batch. A caller verifies the jobs of its own call and
// hands the pool up to one helper token per worker; an idle worker that
// takes a token claims jobs of that call too, until none are left. So a
// lone signature costs no hand-off, and a large batch spreads over every
// core. Build one with [NewVerifier]; it is safe for concurrent use.
// [Verifier.Close] stops the workers.
type Verifier struct {
	tokens  chan *call   // helper tokens: a worker that takes one claims jobs of that call
	mu      sync.RWMutex // held for reading while a Verify hands out tokens; Close takes it to close tokens
	closed  bool
	workers sync.WaitGroup
	calls   sync.Pool // *call
	n       int
}

// call is the state of one Verify call.
type call struct {
	jobs    []Job
	next    atomic.Int64   // the next job index to claim
	helpers sync.WaitGroup // tokens handed out and not yet returned
	bad     atomic.Int64   // lowest failed index, or len(jobs)
	mu      sync.Mutex
	err     error  // the error of job bad
	buf     []byte // the calling goroutine's message buffer
}

// NewVerifier starts a verifier with workers goroutines (runtime.GOMAXPROCS
// when workers <= 0).
func NewVerifier(workers int) *Verifier {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	v := &Verifier{tokens: make(chan *call, 64*workers), n: workers}
	v.calls.New = func() any { return new(call) }
	v.workers.Add(workers)
	for range workers {
		go v.work()
	}
	return v
}

// Workers returns the number of worker goroutines.
func (v *Verifier) Workers() int { return v.n }

func (v *Verifier) work() {
	defer v.workers.Done()
	var buf []byte
	for c := range v.tokens {
		buf = keepBuffer(c.drain(buf))
		c.helpers.Done()
	}
}

// drain claims and checks jobs of c until none are left, and returns buf
// for reuse.
func (c *call) drain(buf []byte) []byte {
	for {
		i := int(c.next.Add(1) - 1)
		if i >= len(c.jobs) {
			return buf
		}
		buf = c.check(i, buf)
	}
}

// check verifies job i of c unless a lower-indexed job already failed, and
// records a failure. It returns buf for reuse.
func (c *call) check(i int, buf []byte) []byte {
	if int64(i) > c.bad.Load() {
		return buf // a lower-indexed job failed: this one cannot be the one reported
	}
	j := &c.jobs[i]
	var err error
	if j.Key == nil {
		err = ErrUnknownKey
	} else if j.Key.Hash() != j.KeyHash {
		err = fmt.Errorf("%w: the record names key %s, verified with %s", trust.ErrBadSignature, trust.FormatKeyHash(j.KeyHash), trust.FormatKeyHash(j.Key.Hash()))
	} else {
		buf, err = j.Key.VerifyBatchBuffer(buf, j.ChainKey, j.Hashes, j.Signature)
	}
	if err == nil {
		return buf
	}
	c.mu.Lock()
	if int64(i) < c.bad.Load() {
		c.bad.Store(int64(i))
		c.err = err
	}
	c.mu.Unlock()
	return buf
}

// Verify checks every job, in parallel across the pool, and returns nil if
// every signature verifies, or a [*VerifyError] for the lowest-indexed job
// that does not (jobs after a failure may be skipped). It returns [ErrEmpty]
// for no jobs and [ErrClosed] after Close. It returns only when no worker
// touches jobs any more.
func (v *Verifier) Verify(jobs []Job) error {
	if len(jobs) == 0 {
		return ErrEmpty
	}
	c := v.calls.Get().(*call)
	c.jobs, c.err = jobs, nil
	c.next.Store(0)
	c.bad.Store(int64(len(jobs)))

	v.mu.RLock()
	if v.closed {
		v.mu.RUnlock()
		c.jobs = nil
		v.calls.Put(c)
		return ErrClosed
	}
	// One token per worker that could help (the caller takes a share too);
	// a full queue means every worker is busy: the caller does the rest.
	for range min(v.n, len(jobs)-1) {
		c.helpers.Add(1)
		select {
		case v.tokens <- c:
			continue
		default:
			c.helpers.Done()
		}
		break
	}
	v.mu.RUnlock()
	c.buf = c.drain(c.buf)
	c.helpers.Wait()

	var err error
	if bad := int(c.bad.Load()); bad < len(jobs) {
		err = &VerifyError{Index: bad, KeyHash: jobs[bad].KeyHash, Err: c.err}
	}
	c.jobs, c.err, c.buf = nil, nil, keepBuffer(c.buf)
	v.calls.Put(c)
	return err
}

// Close stops the workers after the tokens already handed to them and
// waits for them to exit. Verify calls after Close return [ErrClosed].
// Close is idempotent.
func (v *Verifier) Close() {
	v.mu.Lock()
	if !v.closed {
		v.closed = true
		close(v.tokens)
	}
	v.mu.Unlock()
	v.workers.Wait()
}

// maxKeptBuffer bounds the message buffers kept between verifications: a
// huge batch's buffer is dropped, not held forever.
const maxKeptBuffer = 64 << 10

func keepBuffer(b []byte) []byte {
	if cap(b) > maxKeptBuffer {
		return nil
	}
	return b
}
