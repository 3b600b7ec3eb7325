package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/proto"
)

// TestE2EPipelineAbortRestart runs the Go client's pipeline against the
// real server: in a pipeline of n batches, batch k fails (a client clock
// too far ahead); the batches sent behind it before the client learnt of
// the failure are aborted (ErrAborted), the ones sent after are accepted
// (the client restarts the pipeline), and the chain holds exactly the
// confirmed batches in the order they were issued. Batch k-1 is large, so
// that its fsync delays the failure's reply (replies come in order) while
// the rest is sent; a round where the client still learnt of the failure
// before sending anything behind it is repeated.
func TestE2EPipelineAbortRestart(t *testing.T) {
	srv := startSolo(t, "127.0.0.1", 0, t.TempDir(), "--no-wire-encryption")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, srv.url("abort/e2e"), client.WithWireEncryption(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n, k = 16, 5
	var want []string // the data of every confirmed event, in issue order
	aborts := 0
	for round := 0; round < 5 && aborts == 0; round++ {
		futs := make([]*client.Future, n)
		for i := range futs {
			b := client.Batch{Events: []proto.Event{{Data: fmt.Appendf(nil, "r%d-b%d", round, i)}}}
			switch i {
			case k - 1:
				for j := range 1000 {
					b.Events = append(b.Events, proto.Event{Data: fmt.Appendf(nil, "r%d-b%d-%04d-%01000d", round, i, j, 0)})
				}
			case k:
				b.Events[0].Timestamp = time.Now().Add(time.Hour).UnixNano()
			}
			if futs[i], err = c.AppendAsync(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		restarted := false
		for i, f := range futs {
			offs, err := f.Wait(ctx)
			switch {
			case i == k:
				if !errors.Is(err, &proto.CodeError{Code: proto.CodeClockSkew}) || errors.Is(err, client.ErrAborted) {
					t.Fatalf("round %d batch %d = %v, want clock skew", round, i, err)
				}
			case i < k || restarted:
				if err != nil {
					t.Fatalf("round %d batch %d = %v, want confirmed", round, i, err)
				}
			case errors.Is(err, client.ErrAborted):
				var ce *client.CommitError
				if !errors.As(err, &ce) || errors.Is(err, client.ErrConflict) || ce.Code != proto.CodeAborted ||
					!strings.Contains(ce.Reason, "earlier batch") {
					t.Fatalf("round %d batch %d = %v, want aborted naming the failed batch", round, i, err)
				}
				aborts++
			case err == nil:
				restarted = true // sent after the client received the failure
			default:
				t.Fatalf("round %d batch %d = %v", round, i, err)
			}
			if err == nil {
				if len(offs) == 0 || offs[0] != uint64(len(want)) {
					t.Fatalf("round %d batch %d at offsets %v, want %d: order broken", round, i, offs, len(want))
				}
				if i == k-1 {
					want = append(want, fmt.Sprintf("r%d-b%d", round, i))
					for j := range 1000 {
						want = append(want, fmt.Sprintf("r%d-b%d-%04d-%01000d", round, i, j, 0))
					}
				} else {
					want = append(want, fmt.Sprintf("r%d-b%d", round, i))
				}
			}
		}
		t.Logf("round %d: %d batches aborted", round, aborts)
	}
	if aborts == 0 {
		t.Fatalf("in 5 rounds the client always learnt of the failure before sending the next batch; nothing was aborted")
	}
	// After the failure, the pipeline is usable again.
	offs, err := c.Append(ctx, proto.Event{Data: []byte("after")})
	if err != nil || offs[0] != uint64(len(want)) {
		t.Fatalf("Append after the failures = %v, %v; want offset %d", offs, err, len(want))
	}
	want = append(want, "after")

	sub, err := c.Subscribe(ctx, client.SubscribeOptions{History: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []string
	for ev, err := range sub.Events(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(ev.Data))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the chain holds %d events, want %d (the confirmed ones in issue order)", len(got), len(want))
	}
}
