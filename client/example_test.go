package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/proto"
)

// Append lines to a chain and read them back, then follow new events.
// (Compiled, not run: it needs a server; see cmd/atedb's e2e tests.)
func ExampleDial() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "tcp://localhost:5000/db/example/log")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	offs, err := c.Append(ctx, proto.Event{Data: []byte("first")}, proto.Event{Data: []byte("second")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored at", offs)

	sub, err := c.Subscribe(ctx, client.SubscribeOptions{History: true, From: offs[0], Live: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	for ev, err := range sub.Events(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d\t%s\n", ev.Offset, ev.Data)
	}
}

// Optimistic concurrency: append only if the chain has not moved.
func ExampleChain_AppendIf() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "tcp://localhost:5000/db/example/counter")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	next := uint64(0)
	for {
		_, err := c.Chain().AppendIf(ctx, next, proto.Event{Data: []byte("increment")})
		var ce *client.CommitError
		if errors.As(err, &ce) && errors.Is(err, client.ErrConflict) {
			next = ce.Head // someone else wrote first: re-read, decide again
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		break
	}
}
