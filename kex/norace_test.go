//go:build !race

package kex

const raceEnabled = false
