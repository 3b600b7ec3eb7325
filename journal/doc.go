// Package journal is the commit journal: one fdatasync shared by the
// appends of many logs under one root directory.
//
// Without it each log makes its own appends durable with its own
// fdatasync, so N busy logs cost N device flushes where one log with N
// appenders costs one (group commit works only inside a log). With it, a
// log writes a group of records into its segment without syncing it, hands
// the same bytes to the journal ([Journal.Commit]), and acknowledges them
// once the journal has written them, together with the groups of every
// other log, into one journal file with one fdatasync. The segments are
// made durable later, in the background, before the journal space that
// covers them is reused (a checkpoint), and at the latest when a log
// rotates a segment or closes.
//
// # Leader protocol
//
// There is no journal goroutine. The first committer to arrive leads: it
// takes every queued group (its own and those of other logs), writes them
// with one write and one fdatasync, completes them, and hands the lead to
// the first committer that queued meanwhile. A group alone in its round is
// made durable by its log's own fdatasync instead (the same one flush,
// without writing the bytes twice). Groups larger than Options.MaxGroup,
// and groups that span a segment rotation, never reach the journal.
//
// # Checkpoints and replay
//
// Two files of Options.FileSize alternate. When one fills, the writer
// continues in the other (whose checkpoint must have finished) and the full
// one is checkpointed: every file it has records for is synced, then the
// checkpoint file records its generation as covered. [Open] (and [Replay],
// which neither creates nor grows files) redo every record newer than the
// checkpoint into its file, at the same position with the same bytes
// (replay is idempotent), after checking that the file still carries the
// identity the record names ([Files]). A damaged record that later durable
// records vouch for, or a record whose file is gone or replaced, stops
// replay with a *CorruptError before anything is written.
//
// Replay is not optional: a log directory whose last writer committed
// through the journal must not be opened before the journal has been
// replayed, whatever the next run's settings are. The storage root
// (package store) does this at open, in every mode.
//
// The byte layouts and the crash argument are in docs/STORAGE.md ("Commit
// journal").
//
// # Files
//
//	format.go      record and checkpoint layouts
//	journal.go     Journal, Options, Open, Replay, Close
//	commit.go      Group, Commit: the leader protocol
//	checkpoint.go  switching files, checkpoints
//	replay.go      scanning and replay at open
package journal
