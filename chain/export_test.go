package chain

// SetSyncDirHook makes the registry report every directory it fsyncs to f
// (nil stops it); tests only.
func SetSyncDirHook(f func(rel string)) { syncDirHook = f }
