package netio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// ErrServerClosed is returned by [Server.Serve] after [Server.Shutdown] or
// [Server.Close].
var ErrServerClosed = errors.New("netio: server closed")

// Route is the service route of the chain database: clients connect to
// tcp://host:port/db/<chain-key>.
const Route = "/db"

// Config configures a [Server]. Zero fields take the defaults listed.
type Config struct {
	// Registry hosts the chains. Required.
	Registry *chain.Registry
	// WireEncryption is the server's wire-encryption floor: connections use
	// the larger of it and what the client asks (kex.KeySizeNone: no
	// encryption unless the client asks for it).
	WireEncryption kex.KeySize
	// Identity, when set, signs every encrypted handshake so clients can
	// pin the server.
	Identity *kex.Identity
	// MaxConnections bounds open connections (1024); one more gets a
	// refusing HelloAck (CodeTooManyConnections) and is closed.
	MaxConnections int
	// MaxChannels bounds the channels (chains) open on one connection (64).
	MaxChannels int
	// MaxPending bounds the replies one connection may have outstanding,
	// appends in flight included (256). A client that pipelines more
	// waits: the server stops reading its requests until replies drain.
	MaxPending int
	// MaxFrameSize bounds one frame's body, both ways (proto's default,
	// 8 MiB). A larger incoming frame is refused with Fatal before any of
	// it is read.
	MaxFrameSize int
	// HandshakeTimeout bounds the hello and the key exchange (10s).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection from which nothing arrived for this
	// long (2m). After half of it the server sends a Ping, so a healthy
	// client that only listens stays connected by answering with a Pong.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection whose socket accepts nothing for
	// this long (30s): a subscriber that stopped reading is dropped,
	// its cursor released, and nobody else waits for it.
	WriteTimeout time.Duration
	// Logger receives connection lines (slog.Default()).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxConnections, 1024)
	def(&c.MaxChannels, 64)
	def(&c.MaxPending, 256)
	def(&c.MaxFrameSize, proto.DefaultMaxFrameSize)
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server accepts atedb connections and serves the chains of a registry.
// Its shape is net/http's: [Server.Serve] runs the accept loop,
// [Server.Shutdown] stops gracefully, [Server.Close] at once. The accept
// loop only accepts: every connection's hello, key exchange and requests
// run in goroutines of its own. A Server is safe for concurrent use.
type Server struct {
	cfg Config

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	done      chan struct{} // closed by Shutdown/Close

	active   atomic.Int64 // connections counted against MaxConnections
	refusing atomic.Int64 // refusals being written
	connWG   sync.WaitGroup
	refusals sync.WaitGroup // the goroutines writing refusals

	// handoff passes an accepted connection to an idle worker (see
	// startConn); workers counts the worker goroutines.
	handoff chan *conn
	workers sync.WaitGroup

	stats struct {
		accepted, refused, panics atomic.Uint64
	}
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil {
		return nil, errors.New("netio: Config.Registry is required")
	}
	if !cfg.WireEncryption.Valid() {
		return nil, fmt.Errorf("netio: invalid wire encryption %v", cfg.WireEncryption)
	}
	cfg.setDefaults()
	return &Server{
		cfg:       cfg,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		done:      make(chan struct{}),
		handoff:   make(chan *conn),
	}, nil
}

// Serve accepts connections on l until Shutdown or Close, and returns
// ErrServerClosed then; any other return is l's permanent error. l is
// closed when Serve returns. Temporary accept errors (too many open files)
// are retried after a pause growing from 5ms to 1s.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else {
				backoff = min(2*backoff, time.Second)
			}
			s.cfg.Logger.Warn("accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.done:
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		s.stats.accepted.Add(1)
		if s.active.Add(1) > int64(s.cfg.MaxConnections) {
			s.active.Add(-1)
			s.refuse(nc)
			continue
		}
		c := s.newConn(nc)
		if !s.track(c) {
			s.active.Add(-1)
			nc.Close()
			return ErrServerClosed
		}
		s.startConn(c)
	}
}

// workerIdle is how long a connection goroutine that has served its
// connection waits for the next one before it ends.
const workerIdle = time.Second

// startConn serves c on a worker goroutine: an idle one if any is
// waiting, or a new one. A worker that has served a connection waits
// workerIdle for another, keeping its stack, which the key exchange grows
// to tens of KiB (ML-KEM): growing a new goroutine's stack to that, per
// connection, showed as ~5% of the server's CPU in the handshake
// benchmark. Workers end at Shutdown or Close.
func (s *Server) startConn(c *conn) {
	select {
	case s.handoff <- c:
		return
	default:
	}
	s.workers.Add(1)
	go s.worker(c)
}

func (s *Server) worker(c *conn) {
	defer s.workers.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		c.serve()
		idle.Reset(workerIdle)
		select {
		case c = <-s.handoff:
		case <-idle.C:
			return
		case <-s.done:
			return
		}
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.active.Add(-1)
	s.connWG.Done()
}

// refuse answers a connection over the limit with a refusing HelloAck, in
// a goroutine of its own (tracked: Shutdown and Close wait for it) and
// within 1.5 seconds (one to write, half a second to linger); beyond
// MaxConnections refusals at once it just closes.
func (s *Server) refuse(nc net.Conn) {
	s.stats.refused.Add(1)
	if s.refusing.Add(1) > int64(s.cfg.MaxConnections) {
		s.refusing.Add(-1)
		nc.Close()
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.refusing.Add(-1)
		nc.Close()
		return
	}
	s.refusals.Add(1) // under mu: never after wait has begun
	s.mu.Unlock()
	s.cfg.Logger.Warn("connection refused: too many connections", "remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxConnections)
	go func() {
		defer s.refusals.Done()
		defer s.refusing.Add(-1)
		ack := proto.HelloAck{Version: proto.ProtocolVersion, Code: proto.CodeTooManyConnections,
			Reason: fmt.Sprintf("the server has reached its limit of %d connections; try again later", s.cfg.MaxConnections)}
		body, _ := ack.AppendBinary(nil)
		_ = nc.SetDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write(proto.AppendFrame(nil, body))
		lingerClose(nc)
	}()
}

// lingerClose half-closes nc and drains what the peer still sends for a
// moment, so that the last frame written is not lost to a reset caused by
// unread input (as net/http's closeWriteAndWait).
func lingerClose(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := drainBufs.Get().(*[drainSize]byte)
		for range 64 {
			if _, err := nc.Read(buf[:]); err != nil {
				break
			}
		}
		drainBufs.Put(buf)
	}
	nc.Close()
}

// drainSize is the size of lingerClose's drain buffers, pooled: the
// drained bytes are thrown away, so any connection's will do.
const drainSize = 4096

var drainBufs = sync.Pool{New: func() any { return new([drainSize]byte) }}

// Shutdown stops the server gracefully: it closes the listeners, stops
// reading new requests, lets every connection finish the appends it has in
// flight and send their replies, tells clients it is shutting down
// (Unsubscribed{CodeShuttingDown} for each live subscription, then
// Fatal{CodeShuttingDown}), and waits for the connections and every other
// goroutine it started (refusals included) to end. If ctx ends
// first it closes the remaining connections at once and returns ctx.Err().
// The registry is not closed: close it after Shutdown returns.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.stop()
	for _, c := range conns {
		c.shutdown()
	}
	done := make(chan struct{})
	go func() {
		s.wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range s.snapshot() {
			c.kill()
		}
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, and waits for
// the connections' goroutines. Appends already handed to a chain still
// complete (the registry's Close waits for them).
func (s *Server) Close() error {
	conns := s.stop()
	for _, c := range conns {
		c.kill()
	}
	s.wait()
	return nil
}

// wait waits for every goroutine the server started: the connections'
// (each connection waits for its own before it is untracked), the
// workers, and the refusals. Called once s.done is closed, so that no
// new one starts.
func (s *Server) wait() {
	s.connWG.Wait()
	s.workers.Wait() // no worker starts once every tracked conn is served
	s.refusals.Wait()
}

// shuttingDown reports whether Shutdown or Close has been called.
func (s *Server) shuttingDown() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Server) stop() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	for l := range s.listeners {
		l.Close()
	}
	return s.snapshotLocked()
}

func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

func (s *Server) snapshotLocked() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Stats describes a server at one moment.
type Stats struct {
	Connections int64  // open now
	Accepted    uint64 // since start, refused ones included
	Refused     uint64 // over MaxConnections
	Panics      uint64 // connections closed by a recovered panic
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections: s.active.Load(),
		Accepted:    s.stats.accepted.Load(),
		Refused:     s.stats.refused.Load(),
		Panics:      s.stats.panics.Load(),
	}
}
