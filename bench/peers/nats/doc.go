// Command natsbench runs the atedb benchmark workloads (sync1, closed64,
// pipelined64, replay, fanout) against NATS JetStream with file storage,
// printing the same JSON result lines as `go run ./bench`, so that
// bench/compare.sh can put the two side by side.
//
// It is a module of its own (bench/peers/nats) so that the atedb module
// never depends on NATS. It starts itself as the server (`natsbench
// serve`, an embedded nats-server) in a child process, once per workload,
// with `sync_interval: always` (acknowledge after fsync, durable like
// atedb; -sync always, the default) or the NATS default (-sync default:
// fsync every 2 minutes, not durable).
//
// Usage:
//
//	cd bench/peers/nats
//	go run . all -sync always
//	go run . sync1 pipelined64 -sync default -duration 5s -json nats.jsonl
package main
