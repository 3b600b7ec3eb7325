package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// serve runs an embedded nats-server with JetStream file storage in this
// process until SIGTERM or SIGINT. The benchmark starts it as a child
// process so that its CPU time is measured apart from the client's.
func serve(args []string) error {
	fs := flag.NewFlagSet("natsbench serve", flag.ContinueOnError)
	store := fs.String("store", "", "JetStream store directory (required)")
	port := fs.Int("port", 4222, "TCP port on 127.0.0.1")
	syncMode := fs.String("sync", "always", "sync_interval: always (fsync before every ack) or default (fsync every 2 min)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *store == "" {
		return fmt.Errorf("serve: -store is required")
	}
	if *port < 1 || *port > 65535 {
		return fmt.Errorf("serve: -port %d out of range", *port)
	}
	opts := &server.Options{
		ServerName: "natsbench",
		Host:       "127.0.0.1",
		Port:       *port,
		JetStream:  true,
		StoreDir:   *store,
		NoSigs:     true,
		HTTPPort:   0,
	}
	switch *syncMode {
	case "always":
		opts.SyncAlways = true // as `jetstream { sync_interval: always }`
	case "default":
	default:
		return fmt.Errorf("serve: -sync %q: want always or default", *syncMode)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.ConfigureLogger()
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("serve: server not ready after 30 s")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
