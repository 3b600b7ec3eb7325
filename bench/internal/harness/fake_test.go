package harness

import (
	"context"
	"errors"
	"sync"
	"time"
)

// fakeDriver is an in-memory system under test: streams are slices,
// subscribers are goroutines that follow them.
type fakeDriver struct {
	mu      sync.Mutex
	streams map[string]*fakeStream
	// failAfter makes every producer's appends fail after that many events (0: never).
	failAfter int64
	// reorder makes subscribers see each pair of events swapped.
	reorder bool
	// delay is added to every confirmation of an asynchronous append.
	delay time.Duration
}

type fakeStream struct {
	mu     sync.Mutex
	cond   *sync.Cond
	events [][]byte
}

var errFake = errors.New("fake: append refused")

func (d *fakeDriver) stream(name string) *fakeStream {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.streams == nil {
		d.streams = make(map[string]*fakeStream)
	}
	s, ok := d.streams[name]
	if !ok {
		s = &fakeStream{}
		s.cond = sync.NewCond(&s.mu)
		d.streams[name] = s
	}
	return s
}

func (d *fakeDriver) Producer(ctx context.Context, stream string) (Producer, error) {
	return &fakeProducer{d: d, s: d.stream(stream)}, nil
}

type fakeProducer struct {
	d *fakeDriver
	s *fakeStream
	n int64
}

func (p *fakeProducer) Append(ctx context.Context, data []byte) error {
	p.n++
	if p.d.failAfter > 0 && p.n > p.d.failAfter {
		return errFake
	}
	p.s.mu.Lock()
	p.s.events = append(p.s.events, append([]byte(nil), data...))
	p.s.mu.Unlock()
	p.s.cond.Broadcast()
	return nil
}

type fakePending struct {
	err error
	at  time.Time
}

func (f fakePending) Wait(ctx context.Context) error {
	time.Sleep(time.Until(f.at))
	return f.err
}

func (p *fakeProducer) AppendAsync(data []byte) (Pending, error) {
	err := p.Append(context.Background(), data)
	return fakePending{err: err, at: time.Now().Add(p.d.delay)}, nil
}

func (p *fakeProducer) Close() error { return nil }

type fakeSub struct {
	s    *fakeStream
	stop bool
	done chan struct{}
}

func (d *fakeDriver) Subscribe(ctx context.Context, stream string, handle func([]byte)) (Subscription, error) {
	s := d.stream(stream)
	sub := &fakeSub{s: s, done: make(chan struct{})}
	go func() {
		defer close(sub.done)
		next := 0
		for {
			s.mu.Lock()
			for next >= len(s.events) && !sub.stop {
				s.cond.Wait()
			}
			if sub.stop {
				s.mu.Unlock()
				return
			}
			batch := s.events[next:]
			s.mu.Unlock()
			if d.reorder {
				for i := 0; i+1 < len(batch); i += 2 {
					handle(batch[i+1])
					handle(batch[i])
				}
				if len(batch)%2 == 1 {
					handle(batch[len(batch)-1])
				}
			} else {
				for _, ev := range batch {
					handle(ev)
				}
			}
			next += len(batch)
		}
	}()
	return sub, nil
}

func (f *fakeSub) Close() error {
	f.s.mu.Lock()
	f.stop = true
	f.s.mu.Unlock()
	f.s.cond.Broadcast()
	<-f.done
	return nil
}
