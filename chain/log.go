package chain

// Record is one stored event as a [Cursor] returns it.
type Record struct {
	Offset  uint64 // server-assigned offset, strictly increasing in a chain
	Time    int64  // server time of the append, Unix nanoseconds
	Payload []byte // the encoded event; see Cursor.Next for how long it is valid
}

// Log is what a chain needs from its durable log. *mmaplog.Log satisfies it
// through the adapter in chain/mmapstore; chain/memlog is an in-memory
// implementation for tests. All methods must be safe for concurrent use.
type Log interface {
	// Enqueue assigns consecutive offsets to payloads, in call order,
	// and returns the first at once; the batch waits for Commit. done is
	// called exactly once, from the goroutine that commits the batch, when
	// the payloads are durable (err == nil) or will never be (err != nil):
	// either the log is poisoned and every later call fails, or the error
	// is temporary (it has a Temporary() bool method that returns true, as
	// mmaplog's *UnavailableError), the batch and those queued behind it
	// were not stored, and their offsets are assigned again to later
	// appends. done must not block. The log owns payloads until done is
	// called. An error returned by Enqueue itself means nothing was
	// assigned and done will not be called.
	Enqueue(payloads [][]byte, done func(first uint64, err error)) (first uint64, err error)
	// Commit starts committing what Enqueue queued. Where is the log's
	// decision: on the calling goroutine (done callbacks run before
	// Commit returns) when the log is quiet and callerIdle, if not nil,
	// reports that the caller has nothing else to do; otherwise on a
	// goroutine of the log, Commit returning at once. The caller must
	// hold no lock that a done callback takes.
	Commit(callerIdle func() bool)
	// Head returns the next offset to be acknowledged: every offset below
	// it is durable and readable.
	Head() uint64
	// Notify returns a channel closed the next time Head advances, or when
	// the log is closed or poisoned.
	Notify() <-chan struct{}
	// SeekTime returns the offset of the first record whose server time is
	// at or after t (Unix nanoseconds), or Head if there is none.
	SeekTime(t int64) (uint64, error)
	// NewCursor returns a cursor positioned at offset from (at most Head).
	NewCursor(from uint64) (Cursor, error)
	// Err returns the error that poisoned the log, or nil.
	Err() error
	// Close waits for pending appends, syncs and releases the log.
	Close() error
}

// Cursor reads a [Log] in offset order. It is not safe for concurrent use.
type Cursor interface {
	// Next appends to dst[:0] the records after the previous call, at most
	// cap(dst) of them (at least one if cap(dst) is 0) and about maxBytes of
	// payload (always at least one record if one is available), never a
	// record at or beyond Head. It returns an empty slice, not an error, at
	// Head. Payloads may alias the log's memory map and stay valid only
	// until the next call to Next or Close.
	Next(dst []Record, maxBytes int) ([]Record, error)
	// Close releases the cursor.
	Close() error
}

// Store is where the chains' logs live: package store owns the logs
// directory, and chain/mmapstore shows it to chain as a Store. Where a log
// lives is the Store's business; chain never touches a disk.
type Store interface {
	// Open opens (creating if needed) the log of the chain key. It is
	// called once per chain open, never concurrently for the same key,
	// and the log it returns is closed before key is opened again.
	Open(key Key) (Log, error)
	// Exists reports whether key has a log, without creating anything.
	Exists(key Key) (bool, error)
}
