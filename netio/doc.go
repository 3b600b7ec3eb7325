// Package netio is atedb's network front end: the listener, the accept
// loop, each connection's hello, key exchange, reader and writer, and the
// translation of proto's messages into calls on the chain registry. It
// holds no chain state of its own.
//
//	reg, _ := chain.NewRegistry(chain.Config{Root: logs, Open: opener})
//	srv, _ := netio.New(netio.Config{Registry: reg, WireEncryption: kex.KeySize128})
//	l, _ := netio.Listen("::", 5000) // IPv4 and IPv6; "0.0.0.0": IPv4 only
//	go srv.Serve(l)                  // returns ErrServerClosed after Shutdown
//	...
//	srv.Shutdown(ctx) // stop accepting, finish in-flight appends, Fatal(ShuttingDown)
//	reg.Close()       // sync and close every chain's log
//
// # Connections
//
// The accept loop only accepts (temporary errors back off from 5 ms to
// 1 s); everything else runs in the connection's own goroutines:
//
//	serve:   hello (≤16 KiB, read with no read-ahead) ─► HelloAck ─► kex
//	         handshake when encryption is negotiated, all within
//	         HandshakeTimeout ─► channel 0 opened (Opened or Error) ─►
//	         reader loop: one request at a time ─► finish ─► teardown
//	writer:  the only goroutine that writes to the socket once the
//	         handshake is over: it takes every queued reply and frame, in
//	         the order they were queued, and flushes once per round
//	per subscription: a cursor over the chain's log; history and live
//	         events come from the same cursor; it hands the writer one
//	         frame at a time, which builds the Events message straight
//	         from the log's memory map into the socket buffer
//	per channel being closed: answers Closed once the channel's appends
//	         are answered
//
// A connection has one state (handshake, active, draining, closed) that
// only moves forward, and one close path: serve's finish and teardown end
// the subscriptions, wait for the appends in flight, queue the last
// message, let the writer flush, release the chains (and with them the
// connection's locks), and only then close the socket. Every goroutine
// the server starts, refusals of connections over the limit included, is
// waited for by Shutdown and Close.
//
// A connection over MaxConnections gets a HelloAck with
// CodeTooManyConnections and is closed. A panic in a connection's code
// closes that connection only. Every request that expects a reply gets
// exactly one, on every path: Error for Open, Close, Subscribe and
// Unsubscribe, CommitError for Append (also on a channel that is not open:
// CodeUnknownChannel), LockResult for Lock and Unlock, ProveResult
// (CodeUnknownChannel on a channel that is not open, otherwise CodeDenied
// until the trust work lands), Pong for Ping. Garbage, an
// oversized frame, a malformed or unknown message end the connection with
// Fatal naming the problem; a frame that fails authentication ends an
// encrypted connection without a word (its session is dead).
//
// # Flow control and memory
//
// A connection has at most MaxPending replies outstanding: the reader
// takes a slot before handling a request and waits when none is free, so a
// client that pipelines without reading only stalls itself. A subscription
// holds one frame: it hands it to the writer and reads the next batch only
// once the writer has written it, so a slow subscriber's cursor just lags
// behind, costing writers nothing; one that accepts nothing for WriteTimeout is
// disconnected.
// Silence for IdleTimeout/2 draws a Ping; for IdleTimeout, Fatal(Timeout).
//
// # Appends
//
// Each channel is a pipeline ([chain.Writer]): its Appends commit in the
// order sent and their replies (Confirmed or CommitError) come back in that
// order. Once one fails, the channel refuses every later Append with
// CodeAborted, naming the failed commit id, until one arrives with the
// Restart flag ([proto.Append.Restart]): that one resets the writer
// ([chain.Writer.Reset]) and it and the following ones are handled
// normally. A condition alone does not end the abort. Error codes:
// CodeMalformed (an event does not decode), CodeClockSkew (client time
// more than 2 s ahead), CodeValidationFailed (validation hook),
// CodeDuplicate (a batch repeating a stored event, or one of its own,
// that is not an exact retry), CodeConflict (the condition failed),
// CodeAborted (behind a failed batch), CodeBatchTooLarge,
// CodeStorageFailure (the log is poisoned), CodeShuttingDown,
// CodeUnknownChannel (which aborts nothing). Every CommitError carries the
// chain's next offset as Head (0 with CodeUnknownChannel). A batch that
// exactly repeats stored events at consecutive offsets is confirmed with
// their original offsets.
//
// Each channel appends through a chain writer whose idle probe is "the
// reader has no other request buffered" ([chain.NewIdleWriter]). Whether an
// append then commits on the reader is the log's decision: it does when
// the log is quiet (a lone appender), sparing the hand-off to the log's
// writer goroutine, and the replies queued meanwhile (the Confirmed among
// them) wake the connection's writer once. The reader then waits for that
// fdatasync before reading the connection's next request; with requests
// buffered, or under concurrency, appends go through the log's writer and
// its group commit as usual.
//
// # Channels
//
// Open binds a channel to a chain (acquired from the registry, opened on
// demand, created if new unless the client's Hello asked for
// proto.FeatureExistingOnly: then a chain that does not exist is refused
// with CodeNoSuchChain and nothing is created); Close ends the channel's subscription at once and answers
// Closed from a goroutine of its own once the channel's appends are
// answered and its chain released, so a Close never makes the reader wait
// for an fsync: requests on other channels are answered meanwhile, those
// on the closing channel get CodeUnknownChannel and an Open of its number
// CodeChannelInUse until Closed is sent.
//
// # Locks
//
// Lock and Unlock are per (chain, object key) and owned by the connection:
// another connection's Lock gets CodeLockHeld, its Unlock CodeNotLockOwner.
// A connection's locks on a chain are released when it closes its last
// channel on that chain, or disconnects.
package netio
