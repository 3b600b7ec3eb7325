// Command bench measures atedb end to end, the way a user would judge it:
// it starts `atedb solo` in its own process on a temporary directory (or
// uses a running server given by -url), drives it over loopback with the
// Go client, and prints throughput and latency beside the machine's own
// limits measured in the same run (fdatasync rate, disk bandwidth,
// loopback TCP, AES-GCM, ML-KEM).
//
// Usage:
//
//	go run ./bench sync1                       # one workload
//	go run ./bench all -json atedb.jsonl       # every workload, plain and encrypted
//	go run ./bench compare atedb.jsonl nats.jsonl
//
// The workloads shared with the NATS JetStream peer (bench/peers/nats)
// live in bench/internal/harness; this package adds the atedb driver and
// the atedb-only workloads (handshake, manychains, reopen). bench/compare.sh
// runs both systems and prints the ratios; docs/BENCHMARKS.md has the
// latest figures and the exact commands.
package main
