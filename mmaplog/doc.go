// Package mmaplog is the durable, segmented, append-only log that stores one
// chain: records of opaque bytes with server-assigned offsets (u64, dense,
// strictly increasing) and server time stamps, written with group commit and
// read through read-only memory maps.
//
// # Writing
//
// Every append goes to one writer goroutine per [Log], which takes all pending
// batches, writes them with one write call into the active segment and makes
// them durable with one fdatasync (group commit), then acknowledges every
// batch, advances [Log.Head] and wakes tailers ([Log.Notify]). With
// [SyncAlways] (the default) a batch is acknowledged only after fdatasync;
// with [SyncInterval] it is acknowledged after the write and synced
// periodically. A failed write or fdatasync poisons the log: that batch, all
// pending ones and every later append fail with the first error; fsync is
// never retried. A next segment that cannot be prepared (no space, no file
// descriptors, no permission) only fails the appends that need it, with a
// retryable [*UnavailableError], and the log heals by itself. Batches are
// atomic, also across crashes. Close leaves a head mark, and Open refuses a
// log found shorter than it (docs/STORAGE.md §15).
//
// [Log.Enqueue] followed by [Log.Commit] lets the log commit on the
// caller's goroutine when it is quiet (no commit running, the previous group
// a lone batch) and the caller's probe says it has nothing else to do: a
// lone appender then skips the hand-off to the writer goroutine and back.
// Under concurrency, or for a busy caller, Commit only wakes the writer,
// whose groups gather more.
//
// # Many logs: the commit journal
//
// Group commit works inside one log. Logs under one root can share their
// fdatasyncs through a [Journal] (Options.Journal): a log writes its group
// into its segment and the journal makes the groups of every log durable
// with one write and one fdatasync of a journal file; a group alone in its
// round syncs its own segment instead. [OpenJournal] replays what a crash
// left in the journal before any log under the root opens. docs/STORAGE.md
// §13 has the layout and the recovery rules.
//
// # Reading
//
// A [Cursor] starts at any offset (or at a server time via [Log.SeekTime]),
// finds it through a sparse index, and returns batches of records whose
// payloads alias the memory map: no copy, no allocation per record. A cursor
// never returns a record at or beyond Head, so readers only see acknowledged
// data.
//
// # Files
//
// A log directory holds segment files named by their first offset
// ("00000000000000000000.seg"), preallocated and zero-filled in the
// background at sizes that double from 1 MiB up to Options.SegmentSize; a
// record never spans two. Sealed segments have a checksummed sparse index
// ("<first>.idx"), a cache rebuilt from the segment when missing or invalid,
// so opening a large log does not scan it. The byte layouts, the crash
// assumptions and the recovery steps are in docs/STORAGE.md.
//
// # Example
//
//	l, err := mmaplog.Open("/var/lib/atedb/chain-x", mmaplog.Options{})
//	if err != nil {
//		return err // *CorruptionError: see Open and Options.OpenCorrupt
//	}
//	defer l.Close()
//	first, err := l.Append([][]byte{[]byte("event 1"), []byte("event 2")})
//	// first, first+1 are durable here
//
//	c, err := l.NewCursor(0)
//	defer c.Close()
//	buf := make([]mmaplog.Record, 0, 128)
//	for {
//		wake := l.Notify() // take it before reading, so no append is missed
//		recs, err := c.Next(buf, 1<<20)
//		if err != nil {
//			return err
//		}
//		for _, r := range recs {
//			send(r.Offset, r.Payload) // r.Payload valid until the next Next
//		}
//		if len(recs) == 0 {
//			<-wake
//		}
//	}
package mmaplog
