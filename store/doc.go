// Package store is the storage root: the one owner of the logs directory.
//
// A server opens the directory once, at start, before anything else
// touches it:
//
//	root, err := store.Open("/var/lib/atedb", store.Options{
//		Log:     mmaplog.Options{Sync: mmaplog.SyncAlways},
//		Journal: true,
//	})
//	if err != nil {
//		return err // another atedb owns it, or the journal cannot be replayed
//	}
//	defer root.Close() // after every log is closed
//	l, err := root.Open("example.com/joe/mydb/@log")
//
// Open takes an exclusive lock on <dir>/LOCK for the life of the process,
// so that a second server, in any mode, is refused with a message naming
// the directory and the holder's PID. It then replays the commit journal
// (package journal) whenever an earlier run left records in it that no
// checkpoint covers, in every sync mode and whether or not this run uses
// the journal: an append acknowledged through the journal before a power
// cut is redone into its segment before any log is opened, so a restart
// with other flags cannot open a log below what it confirmed.
//
// [Root.Open] creates a log's directory and its missing parents durably
// (each new entry's parent is fsynced), refuses paths that leave the
// directory, name hidden entries (the journal's ".journal" among them) or
// pass through symbolic links, and removes the directories it created if
// the log then fails to open. Every file operation goes through
// internal/vfs, so that the fault-injection and power-loss file systems of
// the tests exercise exactly the server's code.
//
// The logs opened through a Root take no lock of their own (the root's
// covers them) and, in mmaplog.SyncAlways mode with Options.Journal, commit
// through the shared journal. docs/STORAGE.md describes the directory, the
// journal and the crash argument.
package store
