package client

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// Option configures [Dial].
type Option func(*options)

type options struct {
	keySize          kex.KeySize
	pin              string
	existingOnly     bool
	reconnect        bool
	reconnectLimit   time.Duration
	backoffMin       time.Duration
	backoffMax       time.Duration
	handshakeTimeout time.Duration
	keepAlive        time.Duration
	maxFrame         int
	window           int
	subBuffer        int
	log              *slog.Logger
	dial             func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Defaults used by [Dial] when no option overrides them.
const (
	DefaultWindow           = 64
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultKeepAlive        = 30 * time.Second
	DefaultSubscribeBuffer  = 8 << 20
)

func defaultOptions() options {
	// No TCP keep-alive: the client's own Ping after keepAlive of silence
	// finds a dead server, and the probes would cost four setsockopt
	// calls per connection.
	d := net.Dialer{KeepAlive: -1}
	return options{
		keySize:          kex.KeySize128,
		reconnect:        true,
		backoffMin:       50 * time.Millisecond,
		backoffMax:       5 * time.Second,
		handshakeTimeout: DefaultHandshakeTimeout,
		keepAlive:        DefaultKeepAlive,
		maxFrame:         proto.DefaultMaxFrameSize,
		window:           DefaultWindow,
		subBuffer:        DefaultSubscribeBuffer,
		log:              slog.New(slog.DiscardHandler),
		dial:             d.DialContext,
	}
}

// WithWireEncryption sets the wire-encryption key size the client asks
// for (default [kex.KeySize128]). The connection uses the larger of this
// and the server's setting; a server answering with less is refused, so a
// man in the middle cannot strip the encryption. [kex.KeySizeNone] asks
// for none and accepts the server's choice.
func WithWireEncryption(size kex.KeySize) Option {
	return func(o *options) { o.keySize = size }
}

// WithPinnedFingerprint makes the client refuse any server that does not
// prove the long-term identity with this fingerprint ("sha256:" and 64 hex
// digits, as printed by the server). It implies wire encryption.
func WithPinnedFingerprint(fp string) Option {
	return func(o *options) { o.pin = fp }
}

// WithExistingChainsOnly makes the client open only chains that already
// exist: [Dial] and [Client.OpenChain] of a chain the server does not
// have fail with a *[ServerError] of code proto.CodeNoSuchChain, and the
// server creates nothing (it creates a chain on first use otherwise). For
// read-only tools. A server that does not know the feature (it does not
// grant proto.FeatureExistingOnly) opens chains as usual.
func WithExistingChainsOnly(on bool) Option {
	return func(o *options) { o.existingOnly = on }
}

// WithReconnect turns automatic reconnection on (the default) or off.
// With it, a lost connection is redialled with exponential backoff between
// min and max; subscriptions resume from the offset after the last event
// they delivered, and unanswered appends are resent (the server recognises
// a resent batch and answers with its original offsets). Without it, a lost
// connection fails every request with [ErrConnectionLost] and closes the
// client.
func WithReconnect(on bool, min, max time.Duration) Option {
	return func(o *options) {
		o.reconnect = on
		if min > 0 {
			o.backoffMin = min
		}
		if max > 0 {
			o.backoffMax = max
		}
	}
}

// WithReconnectLimit makes the client give up when it has not managed to
// reconnect within d of losing its connection: every pending request then
// fails with [ErrConnectionLost] wrapping the last dial error, and the
// client is closed. Zero (the default) keeps trying until Close.
func WithReconnectLimit(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.reconnectLimit = d
		}
	}
}

// WithHandshakeTimeout bounds connecting: TCP connect, hello, key exchange
// and the opening of the URL's chain (default 10 s).
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.handshakeTimeout = d
		}
	}
}

// WithKeepAlive sets how long the connection may stay silent before the
// client pings the server (the ping may come up to 1/64 of it earlier);
// a server that does not answer within the same time is considered gone
// (default 30 s).
func WithKeepAlive(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.keepAlive = d
		}
	}
}

// WithMaxFrameSize sets the largest frame body sent or accepted (default
// proto.DefaultMaxFrameSize). It must not exceed the server's limit.
func WithMaxFrameSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxFrame = n
		}
	}
}

// WithWindow sets how many append batches a [Chain] keeps in flight at
// once (default 64). AppendAsync blocks while the window is full.
func WithWindow(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.window = n
		}
	}
}

// WithSubscribeBuffer sets the default bytes of events a [Subscription]
// buffers for a slow consumer before it pauses the server's stream
// (default 8 MiB); see [SubscribeOptions.BufferBytes].
func WithSubscribeBuffer(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.subBuffer = n
		}
	}
}

// WithLogger sets the logger for connection events (reconnects, protocol
// errors). The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithDialer replaces the function used to open TCP connections.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) {
		if dial != nil {
			o.dial = dial
		}
	}
}
