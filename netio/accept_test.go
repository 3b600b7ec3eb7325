package netio

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// flakyListener fails its first n Accepts with a temporary error,
// recording when each attempt happened, then delegates.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
	at    []time.Time
}

var errEMFILE = errors.New("accept: too many open files")

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.at = append(l.at, time.Now())
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, errEMFILE
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestAcceptErrorsBackOff(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	inner, err := Listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: inner, fails: 6}
	go func() { _ = ts.Serve(fl) }()
	// Served once the errors are over.
	c := dial(t, inner.Addr().String(), "", kex.KeySizeNone)
	c.send(&proto.Ping{ID: 3})
	if p := expect[*proto.Pong](c); p.ID != 3 {
		t.Fatalf("Pong %+v", p)
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if len(fl.at) < 7 {
		t.Fatalf("%d accept attempts, want at least 7", len(fl.at))
	}
	// Pauses 5, 10, 20, 40, 80, 160 ms: doubling from 5 ms.
	for i := 1; i <= 6; i++ {
		gap := fl.at[i].Sub(fl.at[i-1])
		want := 5 * time.Millisecond << (i - 1)
		if gap < want {
			t.Errorf("pause %d = %v, want at least %v", i, gap, want)
		}
	}
}

func TestBatchLimitsOverTheWire(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{MaxBatchEvents: 3, MaxBatchBytes: 200}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "limits", kex.KeySizeNone)
	expect[*proto.Opened](c)
	if ce := expect[*proto.CommitError](c.appendCheck(0, 1, testEvents("e", 4))); ce.Code != proto.CodeBatchTooLarge || !contains(ce.Reason, "at most 3") {
		t.Fatalf("CommitError %+v", ce)
	}
	big := testEvent(string(make([]byte, 300)))
	// Each later append restarts the pipeline that the refusal aborted.
	c.send(&proto.Append{Channel: 0, CommitID: 2, Restart: true, Events: [][]byte{big}})
	if ce := expect[*proto.CommitError](c); ce.Code != proto.CodeBatchTooLarge || !contains(ce.Reason, "at most 200") {
		t.Fatalf("CommitError %+v", ce)
	}
	c.send(&proto.Append{Channel: 0, CommitID: 3, Restart: true, Events: testEvents("ok", 3)})
	if m := expect[*proto.Confirmed](c); len(m.Offsets) != 3 {
		t.Fatalf("Confirmed %+v", m)
	}
}
