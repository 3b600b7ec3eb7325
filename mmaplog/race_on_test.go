//go:build race

package mmaplog

// raceEnabled reports whether the race detector is on; allocation counts are
// not meaningful then.
const raceEnabled = true
