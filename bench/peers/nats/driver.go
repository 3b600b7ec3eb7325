package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/atedb/atedb/bench/internal/harness"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxAsyncPending bounds JetStream async publishes in flight per
// connection; the harness's window is the real bound and stays below it.
const maxAsyncPending = 1 << 16

// driver runs the harness workloads against NATS JetStream: a stream per
// workload run, with file storage and one replica, subject = stream name.
// It is safe for concurrent use.
type driver struct {
	url string
	// pullMax is the ordered consumer's pull batch (messages).
	pullMax int

	mu      sync.Mutex
	streams map[string]bool
}

func newDriver(url string) *driver {
	return &driver{url: url, pullMax: 1000, streams: make(map[string]bool)}
}

func (d *driver) connect(ctx context.Context, role string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(d.url, nats.Name("natsbench "+role), nats.Timeout(10*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", d.url, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxAsyncPending))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// ensure creates the stream once, as a durable file-backed stream.
func (d *driver) ensure(ctx context.Context, js jetstream.JetStream, stream string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.streams[stream] {
		return nil
	}
	cfg := jetstream.StreamConfig{
		Name:      stream,
		Subjects:  []string{stream},
		Storage:   jetstream.FileStorage,
		Replicas:  1,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
	}
	// JetStream may still be starting: retry for a few seconds.
	var err error
	for range 50 {
		_, err = js.CreateStream(ctx, cfg)
		if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			d.streams[stream] = true
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("create stream %s: %w", stream, err)
}

func (d *driver) Producer(ctx context.Context, stream string) (harness.Producer, error) {
	nc, js, err := d.connect(ctx, "producer")
	if err != nil {
		return nil, err
	}
	if err := d.ensure(ctx, js, stream); err != nil {
		nc.Close()
		return nil, err
	}
	return &producer{nc: nc, js: js, subject: stream}, nil
}

type producer struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
}

// Append publishes and waits for the stream's acknowledgement (with
// sync_interval: always, the server acknowledges after fsync).
func (p *producer) Append(ctx context.Context, data []byte) error {
	_, err := p.js.Publish(ctx, p.subject, data)
	return err
}

func (p *producer) AppendAsync(data []byte) (harness.Pending, error) {
	f, err := p.js.PublishAsync(p.subject, data)
	if err != nil {
		return nil, err
	}
	return pending{f}, nil
}

func (p *producer) Close() error {
	p.nc.Close()
	return nil
}

type pending struct{ f jetstream.PubAckFuture }

func (pd pending) Wait(ctx context.Context) error {
	select {
	case <-pd.f.Ok():
		return nil
	case err := <-pd.f.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Subscribe reads the stream from its first message with an ordered
// consumer (the JetStream way to replay a stream in order, then follow it).
func (d *driver) Subscribe(ctx context.Context, stream string, handle func([]byte)) (harness.Subscription, error) {
	nc, js, err := d.connect(ctx, "subscriber")
	if err != nil {
		return nil, err
	}
	if err := d.ensure(ctx, js, stream); err != nil {
		nc.Close()
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	s := &subscription{nc: nc}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		s.mu.Lock()
		if !s.closed {
			handle(m.Data())
		}
		s.mu.Unlock()
	}, jetstream.PullMaxMessages(d.pullMax))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	s.cc = cc
	return s, nil
}

type subscription struct {
	nc     *nats.Conn
	cc     jetstream.ConsumeContext
	mu     sync.Mutex // held while the handler runs, so Close waits for it
	closed bool
}

func (s *subscription) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cc.Stop()
	s.nc.Close()
	return nil
}
