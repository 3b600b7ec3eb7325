// Package vfs is the file-system seam under the durable log: a small FS/File
// interface, the operating-system implementation ([OS]), an in-memory
// implementation that simulates power loss ([MemFS]), and a wrapper that
// injects errors such as EIO or ENOSPC on chosen operations ([Inject]).
//
// The crash model of [MemFS] is strict POSIX: file bytes survive a crash only
// if the file was synced (Sync or Datasync) after they were written, and a
// directory entry (create, rename, remove, mkdir) survives only if its
// directory was synced with SyncDir afterwards. Optionally, unsynced sectors
// survive at random, to model torn and reordered writes.
//
// Typical use in a test:
//
//	mem := vfs.NewMem()
//	inj := &vfs.Injector{}
//	fs := vfs.Inject(mem, inj)
//	inj.Add(vfs.Rule{Ops: vfs.OpDatasync, Skip: 3, Err: syscall.EIO})
//	// ... run the log on fs; the fourth fdatasync fails ...
//	after := mem.Crash(vfs.CrashOptions{}) // only what was made durable
//	// ... reopen the log on after and check what survived ...
package vfs
