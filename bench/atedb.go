package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/atedb/atedb/bench/internal/harness"
	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// keyPrefix is the first segment of every chain key the benchmarks use.
const keyPrefix = "bench/"

// driver runs the harness workloads on atedb through the Go client: one
// Client (one connection) per producer and per subscriber, reconnection
// off so that a lost connection fails the run instead of hiding in it.
// It is safe for concurrent use.
type driver struct {
	base   string // tcp://host:port
	enc    kex.KeySize
	window int // client window: at least the harness's window
}

func newDriver(base string, wireEncryption, window int) *driver {
	return &driver{base: base, enc: kex.KeySize(wireEncryption), window: max(window, client.DefaultWindow)}
}

// chainURL returns the URL of chain key (without the bench/ prefix).
func (d *driver) chainURL(key string) string { return d.base + client.RouteDB + "/" + keyPrefix + key }

func (d *driver) options() []client.Option {
	return []client.Option{
		client.WithWireEncryption(d.enc),
		client.WithReconnect(false, 0, 0),
		client.WithWindow(d.window),
	}
}

// dial connects to chain key (without the bench/ prefix).
func (d *driver) dial(ctx context.Context, key string) (*client.Client, error) {
	return client.Dial(ctx, d.chainURL(key), d.options()...)
}

func (d *driver) Producer(ctx context.Context, stream string) (harness.Producer, error) {
	c, err := d.dial(ctx, stream)
	if err != nil {
		return nil, err
	}
	return &producer{c: c, ch: c.Chain()}, nil
}

// producer appends one event per batch: the unit the peers confirm too.
type producer struct {
	c  *client.Client
	ch *client.Chain
}

func (p *producer) Append(ctx context.Context, data []byte) error {
	_, err := p.ch.Append(ctx, proto.Event{Data: data})
	return err
}

func (p *producer) AppendAsync(data []byte) (harness.Pending, error) {
	// The client copies the encoding before AppendAsync returns.
	f, err := p.ch.AppendAsync(context.Background(), client.Batch{Events: []proto.Event{{Data: data}}})
	if err != nil {
		return nil, err
	}
	return future{f}, nil
}

func (p *producer) Close() error { return p.c.Close() }

type future struct{ f *client.Future }

func (f future) Wait(ctx context.Context) error {
	_, err := f.f.Wait(ctx)
	return err
}

// Subscribe reads the whole chain from offset 0, then live events.
func (d *driver) Subscribe(ctx context.Context, stream string, handle func([]byte)) (harness.Subscription, error) {
	c, err := d.dial(ctx, stream)
	if err != nil {
		return nil, err
	}
	// handle sees each event only during the call, so the client may
	// recycle its receive buffers (as the NATS peer's handler does).
	sub, err := c.Subscribe(ctx, client.SubscribeOptions{History: true, From: 0, Live: true, ReuseBuffers: true})
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &subscription{c: c, sub: sub, done: make(chan struct{})}
	go s.read(handle)
	return s, nil
}

type subscription struct {
	c    *client.Client
	sub  *client.Subscription
	done chan struct{}
	err  error // why reading ended; read after done
	once sync.Once
}

func (s *subscription) read(handle func([]byte)) {
	defer close(s.done)
	ctx := context.Background()
	for {
		ev, err := s.sub.Next(ctx)
		if err != nil {
			s.err = err
			return
		}
		handle(ev.Data)
	}
}

// Close ends the subscription; it reports an error if the subscription
// had ended for another reason than this Close.
func (s *subscription) Close() error {
	var err error
	s.once.Do(func() {
		s.sub.Close()
		<-s.done
		if s.err != nil && !errors.Is(s.err, client.ErrClosed) {
			err = fmt.Errorf("subscription ended early: %w", s.err)
		}
		if cerr := s.c.Close(); cerr != nil && err == nil && !errors.Is(cerr, client.ErrClosed) {
			err = cerr
		}
	})
	return err
}
