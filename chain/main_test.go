package chain_test

import (
	"testing"

	"github.com/atedb/atedb/internal/leakcheck"
)

// TestMain fails the run if a goroutine of this package outlives the tests.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "github.com/atedb/atedb/chain")
}
