package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Config configures a [Registry]. Zero fields take the defaults listed.
type Config struct {
	// Store opens (creating) the chains' logs. Required.
	Store Store
	// Validator checks batches before they are appended (nil: accept).
	Validator Validator
	// IdleGrace is how long a chain no handle uses stays open (30s).
	IdleGrace time.Duration
	// DedupWindow is how many recent event hashes each chain remembers to
	// recognise retries (65536; about 40 bytes of memory each).
	DedupWindow int
	// MaxClockSkew is how far in the future a client timestamp may be (2s).
	MaxClockSkew time.Duration
	// MaxBatchEvents and MaxBatchBytes bound one append (10000, 4 MiB).
	MaxBatchEvents int
	MaxBatchBytes  int
	// BatchEvents and BatchBytes bound one subscription read (1000, 256 KiB).
	BatchEvents int
	BatchBytes  int
	// Now is the server clock (time.Now).
	Now func() time.Time
	// Logger receives open/close/failure lines (slog.Default()).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.IdleGrace <= 0 {
		c.IdleGrace = 30 * time.Second
	}
	if c.MaxClockSkew <= 0 {
		c.MaxClockSkew = 2 * time.Second
	}
	def(&c.DedupWindow, 1<<16)
	def(&c.MaxBatchEvents, 10000)
	def(&c.MaxBatchBytes, 4<<20)
	def(&c.BatchEvents, 1000)
	def(&c.BatchBytes, 256<<10)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// entry is the registry's state for one key.
type entry struct {
	key   Key
	ready chan struct{} // closed when the open finished (c or err set)
	c     *Chain
	err   error
	refs  int
	idle  *time.Timer
	// closing is non-nil while the chain is being closed, and closed when
	// it is; an Acquire that finds it waits and then opens anew.
	closing chan struct{}
}

// Registry is the set of open chains, keyed by chain key. Chains open on
// first use, are shared by every concurrent user, and close IdleGrace after
// their last [Handle] is released. Opening one chain never blocks another:
// the registry lock is never held during I/O. A Registry is safe for
// concurrent use.
type Registry struct {
	cfg Config

	mu     sync.Mutex
	m      map[Key]*entry
	closed bool
	wg     sync.WaitGroup // open and idle-close goroutines
}

// NewRegistry checks cfg and returns an empty registry.
func NewRegistry(cfg Config) (*Registry, error) {
	if cfg.Store == nil {
		return nil, errors.New("chain: Config.Store is required")
	}
	cfg.setDefaults()
	return &Registry{cfg: cfg, m: make(map[Key]*entry)}, nil
}

// Handle is a reference to an open chain, held by one owner (a
// connection). The chain stays open while any handle is held. Release it
// exactly once; the owner's locks on the chain are released with its last
// handle. A Handle is safe for concurrent use.
type Handle struct {
	*Chain
	r     *Registry
	e     *entry
	owner *Owner
	once  sync.Once
}

// Acquire returns a handle on the chain named key for owner o, opening the
// chain (and creating its directory) if needed. Concurrent Acquires of one
// key share one open; Acquires of other keys never wait for it. It returns
// ctx.Err() if ctx ends first, ErrClosed after Close, or the open's error.
func (r *Registry) Acquire(ctx context.Context, key Key, o *Owner) (*Handle, error) {
	if key.IsZero() {
		return nil, &KeyError{Reason: "empty key"}
	}
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, ErrClosed
		}
		e := r.m[key]
		if e != nil && e.closing != nil {
			wait := e.closing
			r.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if e == nil {
			e = &entry{key: key, ready: make(chan struct{})}
			r.m[key] = e
			r.wg.Add(1)
			go r.open(e)
		}
		e.refs++
		if e.idle != nil {
			e.idle.Stop()
			e.idle = nil
		}
		r.mu.Unlock()

		select {
		case <-e.ready:
		case <-ctx.Done():
			r.release(e)
			return nil, ctx.Err()
		}
		if e.err != nil {
			r.release(e)
			return nil, e.err
		}
		e.c.addUser(o)
		return &Handle{Chain: e.c, r: r, e: e, owner: o}, nil
	}
}

// AcquireExisting is [Registry.Acquire] for a chain that must already
// exist: open, or stored under the logs path (its log directory exists).
// For any other key it creates nothing and returns an error matching
// [ErrNotFound]. Other errors are those of Acquire, and of the check
// (for example a permission error).
func (r *Registry) AcquireExisting(ctx context.Context, key Key, o *Owner) (*Handle, error) {
	if key.IsZero() {
		return nil, &KeyError{Reason: "empty key"}
	}
	open := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, ok := r.m[key]
		return ok || r.closed // a closed registry: Acquire says so
	}
	if !open() {
		exists, err := r.cfg.Store.Exists(key)
		if err != nil {
			return nil, fmt.Errorf("chain %s: look for its log: %w", key, err)
		}
		if !exists && !open() { // nor opened meanwhile by someone else
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
	}
	return r.Acquire(ctx, key, o)
}

// open opens e's chain in its own goroutine, so that no caller's context
// can abandon an open half-way and every waiter gets its result.
func (r *Registry) open(e *entry) {
	defer r.wg.Done()
	start := time.Now()
	c, err := r.openChain(e.key)
	r.mu.Lock()
	e.c, e.err = c, err
	if err != nil && r.m[e.key] == e {
		delete(r.m, e.key) // the next Acquire tries again
	}
	r.mu.Unlock()
	close(e.ready)
	if err != nil {
		r.cfg.Logger.Error("chain open failed", "chain", e.key.String(), "err", err)
		return
	}
	r.cfg.Logger.Info("chain opened", "chain", e.key.String(),
		"head", c.log.Head(), "took", time.Since(start).Round(time.Microsecond))
}

func (r *Registry) openChain(key Key) (*Chain, error) {
	log, err := r.cfg.Store.Open(key)
	if err != nil {
		return nil, fmt.Errorf("chain %s: open log: %w", key, err)
	}
	c, err := openChain(key, log, &r.cfg)
	if err != nil {
		_ = log.Close()
		return nil, err
	}
	return c, nil
}

// Owner returns the owner the handle was acquired for.
func (h *Handle) Owner() *Owner { return h.owner }

// Release gives the handle back. The owner's locks on the chain are
// released with its last handle; the chain closes IdleGrace after the last
// handle of all. Calls after the first do nothing.
func (h *Handle) Release() {
	h.once.Do(func() {
		if n := h.Chain.removeUser(h.owner); n > 0 {
			h.r.cfg.Logger.Debug("locks released", "chain", h.key.String(), "owner", h.owner.Name, "count", n)
		}
		h.r.release(h.e)
	})
}

func (r *Registry) release(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.refs--
	if e.refs > 0 || r.closed || e.c == nil {
		return
	}
	if e.c.Err() != nil {
		// A poisoned chain stays open, refusing writes with its error,
		// until the server restarts: reopening a log after a failed fsync
		// could confirm data that never reached the disk.
		return
	}
	e.idle = time.AfterFunc(r.cfg.IdleGrace, func() { r.idleClose(e) })
}

func (r *Registry) idleClose(e *entry) {
	r.mu.Lock()
	if e.refs > 0 || r.m[e.key] != e || e.closing != nil || r.closed {
		r.mu.Unlock()
		return
	}
	e.idle = nil
	e.closing = make(chan struct{})
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	err := e.c.close()
	r.mu.Lock()
	delete(r.m, e.key)
	close(e.closing)
	r.mu.Unlock()
	if err != nil {
		r.cfg.Logger.Error("chain close failed", "chain", e.key.String(), "err", err)
		return
	}
	r.cfg.Logger.Info("idle chain closed", "chain", e.key.String())
}

// Stats describes a registry at one moment.
type Stats struct {
	Open          int // chains open (or opening)
	Subscriptions int64
}

// Stats returns the registry's current numbers.
func (r *Registry) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Open: len(r.m)}
	for _, e := range r.m {
		if e.c != nil {
			s.Subscriptions += e.c.subs.Load()
		}
	}
	return s
}

// Close closes every chain: it refuses new appends, waits for the ones in
// flight to be durable (or failed) and closes the logs, syncing them. Later
// Acquires fail with ErrClosed and handles still held see ErrClosed. Call
// it after the connections are gone. It returns the first close error.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	type closeJob struct {
		e       *entry
		closing chan struct{}
	}
	jobs := make([]closeJob, 0, len(r.m))
	for _, e := range r.m {
		if e.idle != nil {
			e.idle.Stop()
			e.idle = nil
		}
		jobs = append(jobs, closeJob{e, e.closing})
	}
	r.mu.Unlock()
	var first error
	for _, j := range jobs {
		<-j.e.ready
		if j.closing != nil {
			<-j.closing // an idle close already running finishes it
			continue
		}
		if j.e.c == nil {
			continue
		}
		if err := j.e.c.close(); err != nil && first == nil {
			first = err
		}
	}
	r.wg.Wait()
	return first
}

// close refuses new appends, waits for those in flight and closes the log.
func (c *Chain) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.inflight.Wait()
	if err := c.log.Close(); err != nil {
		return fmt.Errorf("chain %s: close log: %w", c.key, err)
	}
	return nil
}

func (c *Chain) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
