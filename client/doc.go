// Package client is the Go SDK of atedb: it connects to an `atedb solo`
// server, appends events to chains and subscribes to them.
//
// A [Client] is one TCP connection (wire-encrypted with ML-KEM and AES-GCM
// unless both sides turn it off) carrying one or more chains, each on its
// own channel. It reconnects by itself: subscriptions resume from the
// offset after the last event they delivered, with no gap and no
// duplicate, and unanswered appends are resent (the server recognises a
// resent batch and answers with its original offsets, so nothing is
// stored twice).
//
//	ctx := context.Background()
//	c, err := client.Dial(ctx, "tcp://localhost:5000/db/example/orders")
//	if err != nil {
//		log.Fatal(err) // a *client.ServerError says why the server refused
//	}
//	defer c.Close()
//
//	// One atomic batch; returns once it is validated and on disk.
//	offsets, err := c.Append(ctx,
//		proto.Event{DataKey: 1, Data: []byte(`{"order":1,"qty":3}`)},
//		proto.Event{DataKey: 2, Data: []byte(`{"order":2,"qty":1}`)})
//
//	// Optimistic concurrency: store only if nobody appended since.
//	_, err = c.Chain().AppendIf(ctx, offsets[1]+1, proto.Event{Data: []byte("next")})
//	if errors.Is(err, client.ErrConflict) {
//		var ce *client.CommitError
//		errors.As(err, &ce) // ce.Head is the chain's next offset
//	}
//
//	// Pipelined appends: up to the window (WithWindow) in flight, in order.
//	f, err := c.AppendAsync(ctx, client.Batch{Events: []proto.Event{{Data: []byte("x")}}})
//	offs, err := f.Wait(ctx)
//
//	// The history from offset 0, then every event confirmed later.
//	sub, err := c.Subscribe(ctx, client.SubscribeOptions{History: true, Live: true})
//	defer sub.Close()
//	for ev, err := range sub.Events(ctx) {
//		if err != nil {
//			break // the subscription ended: err says why
//		}
//		fmt.Println(ev.Offset, ev.Time, string(ev.Data))
//	}
//
// # Errors
//
// Refusals by the server carry its code and reason: a *[ServerError] for a
// refused connection, chain, subscription or lock, a *[CommitError] for a
// refused batch (with the failing event's index and the chain's head).
// Both match errors.Is(err, &proto.CodeError{Code: c}). [ErrConflict] and
// [ErrAborted] single out failed conditions and batches aborted behind a
// failed one; [ErrClosed], [ErrConnectionLost] and [ErrLockLost] report
// the client's own state.
//
// # Memory and slow consumers
//
// A subscription buffers at most [SubscribeOptions.BufferBytes] of events
// for a consumer that reads slowly; when the buffer is full the client asks
// the server to pause the stream and resumes it from the next offset once
// the consumer has caught up, so neither side buffers without bound and
// appends on the same connection are never held up by a slow reader.
//
// Received events are copied once, a whole Events frame at a time, and
// decoded by [Subscription.Next] without further allocation; an [Event]'s
// byte slices point into its frame's block (see [Event] on keeping events
// for long). A consumer that handles each event as it comes can set
// [SubscribeOptions.ReuseBuffers]: the blocks are then recycled, a replay
// makes no garbage, and an event's slices are valid until the next Next
// ([Event.Clone] keeps one).
//
// Each connection receives into at most four reusable buffers, from 64 KiB
// growing to 1 MiB as large frames arrive (a frame larger than that gets
// a buffer of its own size while it is handled). With wire encryption, one
// goroutine reads the socket and, for large frames, another decrypts and
// dispatches them, so the two run on separate cores when cores are free.
//
// # Several chains on one connection
//
//	other, err := c.OpenChain(ctx, "example/invoices")
//	_, err = other.Append(ctx, proto.Event{Data: []byte("inv-1")})
//	err = other.Close() // the URL's chain and its subscriptions carry on
package client
