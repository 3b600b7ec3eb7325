package main

import (
	"context"
	"flag"
	"time"

	"github.com/atedb/atedb/client"
)

// clientFlags are the flags shared by the client commands (append, tail).
type clientFlags struct {
	retry   time.Duration
	connect time.Duration
	pin     string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.retry, "retry", 30*time.Second,
		"keep reconnecting this long when the connection is lost (appends in flight are resent, a tail resumes where it was); 0: fail at once")
	fs.DurationVar(&f.connect, "connect-timeout", 10*time.Second, "time allowed to connect, say hello and open the chain")
	fs.StringVar(&f.pin, "server-fingerprint", "", "refuse a server that does not prove this identity (\"sha256:...\", as the server prints it)")
}

// dial connects a client command to url with the global and client flags,
// then the extra options.
func (f *clientFlags) dial(ctx context.Context, root *rootConfig, url string, extra ...client.Option) (*client.Client, error) {
	opts := []client.Option{
		client.WithWireEncryption(root.WireEncryption),
		client.WithHandshakeTimeout(f.connect),
		client.WithLogger(root.Logger),
	}
	if f.retry > 0 {
		opts = append(opts, client.WithReconnect(true, 0, 0), client.WithReconnectLimit(f.retry))
	} else {
		opts = append(opts, client.WithReconnect(false, 0, 0))
	}
	if f.pin != "" {
		opts = append(opts, client.WithPinnedFingerprint(f.pin))
	}
	return client.Dial(ctx, url, append(opts, extra...)...)
}
