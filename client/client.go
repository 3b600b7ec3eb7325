package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// Client is a connection to one atedb server, opened by [Dial]. It carries
// the chain named in the URL (channel 0, whose methods Client exposes
// directly) and any number of further chains opened with
// [Client.OpenChain], each on its own channel of the same connection.
//
// A Client reconnects on its own (see [WithReconnect]): subscriptions
// resume without gap or duplicate, and unanswered appends are resent.
//
// All methods are safe for concurrent use. Close releases everything;
// every goroutine the Client started has ended when Close returns.
type Client struct {
	target Target
	o      options
	ctx    context.Context // cancelled by Close: stops the reconnect loop
	cancel context.CancelFunc
	done   chan struct{} // closed when the run loop has ended
	dead   chan struct{} // closed when the client has failed or closed

	mu        sync.Mutex
	cur       *conn
	gen       uint64        // generation of cur (counts attached connections)
	connected chan struct{} // closed while cur != nil
	err       error         // terminal error; set once
	nextID    uint64        // commit, lock and ping ids
	nextChan  uint32
	chans     map[uint32]*channel
	chains    map[*Chain]struct{}
	appends   map[uint64]*Future
	reqs      map[uint64]*request
	def       *Chain
	keySize   kex.KeySize // negotiated by the last attached connection
}

// chanKind says what a channel number is used for.
type chanKind uint8

const (
	chanBase chanKind = iota + 1 // a Chain's own channel: appends, locks
	chanSub                      // one Subscription
)

// channel is the client's view of one channel number. Guarded by Client.mu.
type channel struct {
	kind    chanKind
	chain   *Chain
	sub     *Subscription
	closing bool // Close sent; the number is free once Closed arrives
}

// reqKind is the kind of a pending request matched by id.
type reqKind uint8

const (
	reqLock reqKind = iota + 1
	reqUnlock
	reqPing
	reqOpen
)

// request is a pending Lock, Unlock, Ping or Open. Its result is sent once
// on done (capacity 1).
type request struct {
	kind  reqKind
	chain *Chain
	key   uint64
	sent  time.Time
	done  chan error
}

// sendLocked sends the request on cn.
func (r *request) sendLocked(cn *conn, id uint64) {
	switch r.kind {
	case reqLock:
		cn.send(&proto.Lock{Channel: r.chain.base, ID: id, Key: r.key})
	case reqUnlock:
		cn.send(&proto.Unlock{Channel: r.chain.base, ID: id, Key: r.key})
	case reqPing:
		r.sent = time.Now()
		cn.send(&proto.Ping{ID: id})
	}
}

// Dial connects to the chain at rawURL ("tcp://host:port/db/<chain-key>")
// and returns once the server has opened that chain. ctx bounds the
// connection attempt only; later reconnects are bounded by Close.
//
// Errors: a *[URLError] for a bad URL; a *[ServerError] when the server
// refuses the hello or the chain (its Code and Reason say why); an error
// wrapping a kex error when wire encryption fails or the server does not
// offer the encryption or identity the client requires; a network error
// otherwise.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	t, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if !o.keySize.Valid() {
		return nil, fmt.Errorf("client: invalid wire-encryption key size %d", int(o.keySize))
	}
	c := &Client{
		target:    t,
		o:         o,
		done:      make(chan struct{}),
		dead:      make(chan struct{}),
		connected: make(chan struct{}),
		chans:     make(map[uint32]*channel),
		chains:    make(map[*Chain]struct{}),
		appends:   make(map[uint64]*Future),
		reqs:      make(map[uint64]*request),
	}
	c.def = c.newChain(t.ChainKey, 0)
	c.chans[0] = &channel{kind: chanBase, chain: c.def}
	cn, err := c.dialConn(ctx)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.Lock()
	c.attachLocked(cn)
	c.mu.Unlock()
	go c.run(cn)
	return c, nil
}

// Target returns the parsed URL the client was dialled with.
func (c *Client) Target() Target { return c.target }

// WireEncryption returns the key size the current connection negotiated:
// kex.KeySizeNone for a plaintext connection, or, while the client is
// reconnecting, for the last connection it had.
func (c *Client) WireEncryption() kex.KeySize {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keySize
}

// Chain returns the handle of the URL's chain (channel 0). Client's own
// Append, Subscribe, Lock... methods are shortcuts to it.
func (c *Client) Chain() *Chain { return c.def }

// Close ends the connection and stops reconnecting. Requests still
// waiting fail with [ErrClosed] (their outcome on the server is unknown;
// use [Chain.Sync] before Close to wait for appends). Subscriptions end
// with ErrClosed. Close returns once every goroutine of the client has
// ended; it is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClosed
	}
	cur := c.cur
	c.mu.Unlock()
	c.cancel()
	if cur != nil {
		cur.kill(ErrClosed)
	}
	<-c.done
	return nil
}

// Err returns nil while the client is usable, and afterwards why it is
// not: ErrClosed after Close, or the error that made it give up (a
// permanent refusal by the server, or a lost connection without
// reconnect).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// run owns the connection lifecycle: it waits for the current connection
// to die, detaches it, and redials with backoff until Close or a
// permanent error.
func (c *Client) run(cn *conn) {
	defer close(c.done)
	bo := newBackoff(c.o.backoffMin, c.o.backoffMax)
	for {
		<-cn.dead
		cn.wg.Wait()
		if cn.sess != nil {
			cn.sess.Close()
		}
		cn.releaseBuffers()
		cause := cn.err
		c.mu.Lock()
		c.detachLocked(cn, cause)
		c.mu.Unlock()
		switch {
		case c.ctx.Err() != nil:
			c.shutdown(ErrClosed)
			return
		case !c.o.reconnect:
			c.shutdown(lostErr(cause))
			return
		case permanent(cause):
			c.shutdown(cause)
			return
		}
		c.o.log.Info("atedb client: connection lost; reconnecting", "addr", c.target.Addr, "err", cause)
		lostAt := time.Now()
		for {
			if lim := c.o.reconnectLimit; lim > 0 && time.Since(lostAt) >= lim {
				c.shutdown(fmt.Errorf("%w: no reconnection within %s: %w", ErrConnectionLost, lim, cause))
				return
			}
			t := time.NewTimer(bo.Delay())
			select {
			case <-c.ctx.Done():
				t.Stop()
				c.shutdown(ErrClosed)
				return
			case <-t.C:
			}
			next, err := c.dialConn(c.ctx)
			if err == nil {
				cn = next
				break
			}
			if c.ctx.Err() != nil {
				c.shutdown(ErrClosed)
				return
			}
			if permanent(err) {
				c.shutdown(err)
				return
			}
			cause = err
			c.o.log.Info("atedb client: reconnect failed", "addr", c.target.Addr, "err", err)
		}
		bo.Reset()
		c.mu.Lock()
		if c.err != nil { // Close raced with the dial
			c.mu.Unlock()
			cn.kill(ErrClosed)
			cn.nc.Close()
			if cn.sess != nil {
				cn.sess.Close()
			}
			cn.releaseBuffers()
			c.shutdown(ErrClosed)
			return
		}
		c.attachLocked(cn)
		c.mu.Unlock()
		c.o.log.Info("atedb client: reconnected", "addr", c.target.Addr)
	}
}

func lostErr(cause error) error {
	if cause == nil || errors.Is(cause, ErrConnectionLost) {
		if cause == nil {
			return ErrConnectionLost
		}
		return cause
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, cause)
}

// attachLocked makes cn the current connection: it replays the client's
// state onto it (open chains, subscriptions from their resume offsets,
// unanswered appends in their original order) and starts its goroutines.
func (c *Client) attachLocked(cn *conn) {
	c.gen++
	for ch, st := range c.chans {
		if st.closing {
			delete(c.chans, ch)
		}
	}
	for ch := range c.chains {
		// A new connection has fresh pipelines: no restart needed, and
		// replies of the old one are ignored (gen).
		ch.epoch++
		ch.restart = false
		if ch.base != 0 {
			cn.send(&proto.Open{Channel: ch.base, ChainKey: ch.key})
		}
	}
	ids := make([]uint64, 0, len(c.reqs))
	for id := range c.reqs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c.reqs[id].sendLocked(cn, id)
	}
	for _, st := range c.chans {
		if st.kind == chanSub {
			st.sub.attachLocked(cn)
		}
	}
	pending := make([]*Future, 0, len(c.appends))
	for _, f := range c.appends {
		pending = append(pending, f)
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].id < pending[j].id })
	for _, f := range pending {
		if f.chain.closed {
			f.completeLocked(nil, ErrClosed)
			continue
		}
		f.sendLocked(cn)
	}
	c.cur = cn
	c.keySize = kex.KeySizeNone
	if cn.sess != nil {
		c.keySize = cn.sess.KeySize()
	}
	close(c.connected)
	cn.start()
}

// detachLocked forgets the dead connection cn: requests that cannot be
// resent fail, appends wait for the next connection (or fail if they were
// doomed by an earlier failure of their pipeline), subscriptions wait to
// be resumed.
func (c *Client) detachLocked(cn *conn, cause error) {
	if c.cur != cn {
		return
	}
	c.cur = nil
	c.connected = make(chan struct{})
	for id, r := range c.reqs {
		if r.kind == reqUnlock {
			// The server released the connection's locks when it ended.
			delete(c.reqs, id)
			r.done <- ErrLockLost
		}
		// Locks and pings are resent on the next connection: a lock taken
		// on this one has been released with it.
	}
	for _, f := range c.appends {
		if f.doomed {
			f.completeLocked(nil, &CommitError{CommitID: f.id, Code: proto.CodeAborted, Index: -1, Aborted: true,
				Reason: "an earlier batch of this pipeline failed and the connection was lost"})
		}
	}
	for _, st := range c.chans {
		if st.kind == chanSub {
			st.sub.detachLocked()
		}
	}
}

// shutdown fails everything with err and marks the client dead. Called
// by the run loop only, after the last connection is detached.
func (c *Client) shutdown(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	for id, r := range c.reqs {
		delete(c.reqs, id)
		r.done <- err
	}
	for _, f := range c.appends {
		f.completeLocked(nil, err)
	}
	for _, st := range c.chans {
		if st.kind == chanSub {
			st.sub.failLocked(err)
		}
	}
	for ch := range c.chains {
		ch.closed = true
		if ch.opening != nil { // an OpenChain waiting for Opened
			ch.opening.done <- err
			ch.opening = nil
		}
	}
	close(c.dead)
}

// lockConnected waits until the client has a connection and returns with
// c.mu held and c.cur set, or returns an error (without the lock).
func (c *Client) lockConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.isDeadLocked() {
			err := c.err
			c.mu.Unlock()
			return err
		}
		if c.cur != nil {
			return nil
		}
		wait := c.connected
		c.mu.Unlock()
		select {
		case <-wait:
		case <-c.dead:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Client) isDeadLocked() bool {
	if c.err != nil {
		return true
	}
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// allocChanLocked returns an unused channel number (never 0).
func (c *Client) allocChanLocked() (uint32, error) {
	for range len(c.chans) + 2 {
		c.nextChan++
		if c.nextChan == 0 {
			c.nextChan = 1
		}
		if _, used := c.chans[c.nextChan]; !used {
			return c.nextChan, nil
		}
	}
	return 0, errors.New("client: no free channel number")
}

// newIDLocked returns a fresh request or commit id.
func (c *Client) newIDLocked() uint64 {
	c.nextID++
	return c.nextID
}

// Ping measures one round trip to the server.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	if err := c.lockConnected(ctx); err != nil {
		return 0, err
	}
	id := c.newIDLocked()
	r := &request{kind: reqPing, done: make(chan error, 1)}
	c.reqs[id] = r
	r.sendLocked(c.cur, id)
	c.mu.Unlock()
	if err := c.wait(ctx, id, r); err != nil {
		return 0, err
	}
	return time.Since(r.sent), nil
}

// wait waits for request id's answer, forgetting it if ctx ends first.
func (c *Client) wait(ctx context.Context, id uint64, r *request) error {
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		if c.reqs[id] == r {
			delete(c.reqs, id)
		}
		c.mu.Unlock()
		select {
		case err := <-r.done:
			return err
		default:
			return ctx.Err()
		}
	}
}

// OpenChain opens another chain on the same connection (a new channel)
// and returns its handle once the server has opened it. Errors: a
// *[ServerError] (for example CodeInvalidChainKey) if the server refuses,
// ctx's error, or ErrClosed.
func (c *Client) OpenChain(ctx context.Context, key string) (*Chain, error) {
	if key == "" || len(key) > proto.MaxStringLen {
		return nil, fmt.Errorf("client: chain key must be 1..%d bytes", proto.MaxStringLen)
	}
	if err := c.lockConnected(ctx); err != nil {
		return nil, err
	}
	num, err := c.allocChanLocked()
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	ch := c.newChain(key, num)
	c.chans[num] = &channel{kind: chanBase, chain: ch}
	c.chains[ch] = struct{}{}
	r := &request{kind: reqOpen, chain: ch, done: make(chan error, 1)}
	ch.opening = r
	c.cur.send(&proto.Open{Channel: num, ChainKey: key})
	c.mu.Unlock()
	select {
	case err = <-r.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		ch.Close()
		return nil, err
	}
	return ch, nil
}

// Append is a shortcut for c.Chain().Append.
func (c *Client) Append(ctx context.Context, events ...proto.Event) ([]uint64, error) {
	return c.def.Append(ctx, events...)
}

// AppendAsync is a shortcut for c.Chain().AppendAsync.
func (c *Client) AppendAsync(ctx context.Context, b Batch) (*Future, error) {
	return c.def.AppendAsync(ctx, b)
}

// Subscribe is a shortcut for c.Chain().Subscribe.
func (c *Client) Subscribe(ctx context.Context, opts SubscribeOptions) (*Subscription, error) {
	return c.def.Subscribe(ctx, opts)
}

// Lock is a shortcut for c.Chain().Lock.
func (c *Client) Lock(ctx context.Context, key uint64) error { return c.def.Lock(ctx, key) }

// Unlock is a shortcut for c.Chain().Unlock.
func (c *Client) Unlock(ctx context.Context, key uint64) error { return c.def.Unlock(ctx, key) }

// Sync is a shortcut for c.Chain().Sync.
func (c *Client) Sync(ctx context.Context) error { return c.def.Sync(ctx) }
