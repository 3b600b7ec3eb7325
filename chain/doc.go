// Package chain hosts atedb's chains: the registry of open chains, each
// chain's write path, its subscriptions (cursors over the log) and its
// advisory locks. It parses no frames and reads no flags; netio drives it
// and cmd/atedb wires a durable log into it through the [Log] interface.
//
// # Keys and directories
//
// A chain is named by its key, the URL path after the route "/db":
// tcp://host:5000/db/example.com/joe/mydb names key "example.com/joe/mydb".
// [ParseKey] accepts only lower-case ASCII letters, digits, '.', '_' and '-'
// in one to eight '/'-separated segments, with no empty, hidden, "..", '~'
// or device-name segment, so every chain has exactly one spelling. The
// chain's log lives in <logs>/<key>/@log: '@' cannot occur in a key, so
// neither another key nor the log's files can collide with it, and a
// person finds the log of a key by its name. Directories are created
// through an os.Root and refused if a symbolic link would alias them.
// [Registry.Acquire] creates a chain on first use; read-only users call
// [Registry.AcquireExisting], which creates nothing and refuses a chain
// that does not exist with [ErrNotFound].
//
// # Write path
//
//	Append(batch) ─► structural checks (decode, timestamp ≤ now+2s, size)
//	              ─► under the chain lock: retry detection by event hash,
//	                 expected-next-offset condition, Validator hook,
//	                 Log.AppendAsync (offsets assigned in order)
//	              ─► log group commit (fdatasync) ─► done(Result)
//
// A batch is atomic. Only durable events are visible: subscribers read
// through cursors that never pass the log's head. A batch that is an exact
// retry of stored events (same events, same order) is answered with the
// original offsets, once they are durable. Batches of one [Writer] commit
// in order; after one fails, the writer's later batches fail with
// [CodeAborted] until [Writer.Reset]. A failed fsync poisons the chain: it
// then refuses every write until the process restarts.
//
// # Example
//
//	reg, err := chain.NewRegistry(chain.Config{Root: "/var/lib/ate", Open: openLog})
//	key, err := chain.ParseKey("example.com/joe/mydb")
//	conn := &chain.Owner{Name: remoteAddr}
//	h, err := reg.Acquire(ctx, key, conn)
//	defer h.Release()
//	w := chain.NewWriter(conn)
//	h.Append(w, chain.AppendRequest{Events: encoded}, func(r chain.Result) {
//		// r.Err == nil: r.First.. r.First+r.Count-1 are durable
//	})
//	sub, err := h.Subscribe(chain.SubscribeOptions{From: 0, History: true, Live: true})
//	defer sub.Close()
//	for {
//		recs, err := sub.Next(ctx) // history first, then live events
//		...
//	}
package chain
