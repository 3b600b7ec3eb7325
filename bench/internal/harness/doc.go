// Package harness is the system-neutral half of the atedb benchmarks: the
// workloads (durable appends from one or many producers, pipelined
// appends, history replay, live fan-out), the machine limits they are
// compared with, a log-bucket latency histogram, CPU accounting of both
// ends, child-process control, and the result format (a table for people,
// one JSON line per result for scripts).
//
// A system under test plugs in through [Driver]. bench/ (atedb through its
// Go client) and the separate module bench/peers/nats (NATS JetStream
// through nats.go) both drive the same workload code, so their figures are
// comparable line for line.
//
// Usage:
//
//	lim, err := harness.MeasureLimits(ctx, dataDir, time.Second)
//	env := &harness.Env{System: "atedb", Driver: drv, Limits: lim, Server: proc}
//	r := harness.RunProducers(ctx, env, "sync1", harness.Params{
//		EventSize: 1024, Producers: 1, Window: 1, DurationS: 10, Sync: "always"})
//	_ = r.WriteJSON(os.Stdout)
//	_ = harness.WriteTable(os.Stdout, []harness.Result{r})
//
// Units: MB = 1e6 bytes, GB = 1e9 bytes, latencies in microseconds.
package harness
