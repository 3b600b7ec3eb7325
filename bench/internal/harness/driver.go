package harness

import "context"

// Driver connects the generic workloads to one system under test (atedb
// through its Go client, NATS JetStream through nats.go, or a fake in
// tests). Every Producer and every Subscribe gets its own connection, as
// the peers' clients do. Methods must be safe for concurrent use.
type Driver interface {
	// Producer opens a connection that appends to the stream (atedb: chain)
	// named stream, creating it if needed.
	Producer(ctx context.Context, stream string) (Producer, error)
	// Subscribe opens a connection that delivers every event of stream
	// from the first one, then live events as they are confirmed, calling
	// handle once per event in stream order from a single goroutine. data
	// is valid only during the call. Subscribe returns once the
	// subscription is established; handle may already have been called.
	Subscribe(ctx context.Context, stream string, handle func(data []byte)) (Subscription, error)
}

// Producer appends events on one connection. A Producer is used by one
// goroutine at a time, but the Pending values it returns may be waited on
// from another goroutine.
type Producer interface {
	// Append appends one event and returns once it is confirmed (durable
	// as the server's sync mode defines) or failed.
	Append(ctx context.Context, data []byte) error
	// AppendAsync sends one event without waiting for its confirmation.
	// data must not be modified until the Pending is resolved. Events sent
	// on one Producer are confirmed in the order sent.
	AppendAsync(data []byte) (Pending, error)
	// Close closes the connection.
	Close() error
}

// Pending is an append in flight.
type Pending interface {
	// Wait blocks until the append is confirmed (nil) or failed.
	Wait(ctx context.Context) error
}

// Subscription is a live subscription.
type Subscription interface {
	// Close ends the subscription and closes its connection. After Close
	// returns, handle is not called again.
	Close() error
}
