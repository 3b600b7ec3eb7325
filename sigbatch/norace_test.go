//go:build !race

package sigbatch

const raceEnabled = false
