package chain_test

import "time"

// encodeTestEvent encodes an event carrying data s and client time ts
// (zero: none). TODO(proto): proto's event encoder once it lands.
func encodeTestEvent(s string, ts time.Time) []byte {
	return []byte(s)
}
