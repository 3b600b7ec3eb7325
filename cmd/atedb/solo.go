package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/mmapstore"
	"github.com/atedb/atedb/journal"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/mmaplog"
	"github.com/atedb/atedb/netio"
	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/store"
)

// defaultLogsPath is where solo keeps its chains without a logs-path.
const defaultLogsPath = "~/ate"

// frameHeadroom is kept between the largest batch and the largest frame:
// message headers and the encryption overhead, with room to spare.
const frameHeadroom = 1024

// shutdownGrace bounds the graceful part of a shutdown; connections still
// open after it are closed (appends already in flight still complete).
const shutdownGrace = 30 * time.Second

type soloConfig struct {
	root *rootConfig
	fs   *flag.FlagSet

	listen       string
	port         int
	sync         string
	syncInterval time.Duration
	segmentSize  int64
	journal      bool
	journalSize  int64

	maxConns       int
	maxChannels    int
	maxPending     int
	maxFrame       int
	maxBatchEvents int
	maxBatchBytes  int
	handshake      time.Duration
	idle           time.Duration
	writeTimeout   time.Duration
	idleClose      time.Duration
	dedupWindow    int

	identity       string
	identityAlg    string
	identityAlgSet bool // --identity-alg was given (flag, environment or file)

	prof profiler // --cpuprofile, --trace (debugging)
}

func soloCommand(root *rootConfig) *ffcli.Command {
	c := &soloConfig{root: root}
	fs := flag.NewFlagSet("atedb solo", flag.ContinueOnError)
	fs.SetOutput(root.Stderr)
	c.fs = fs
	for _, name := range []string{"l", "listen"} {
		fs.StringVar(&c.listen, name, "::", "IP address to listen on: :: (IPv4 and IPv6), 0.0.0.0 (IPv4 only), 127.0.0.1 or ::1 (this machine only)")
	}
	for _, name := range []string{"p", "port"} {
		fs.IntVar(&c.port, name, 5000, "TCP port to listen on (0: any free port, printed at start)")
	}
	fs.StringVar(&c.sync, "sync", "always", "when appends are confirmed: always (after fdatasync) or interval (after the write; fdatasync every --sync-interval)")
	fs.DurationVar(&c.syncInterval, "sync-interval", mmaplog.DefaultSyncInterval, "fdatasync period with --sync interval")
	fs.BoolVar(&c.journal, "journal", true, "with --sync always: make every chain's appends durable through one commit journal (logs-path/"+journal.DirName+
		"), so that appends to many chains share fdatasyncs; false: each chain syncs its own log")
	fs.Int64Var(&c.journalSize, "journal-size", journal.DefaultFileSize, "size in bytes of each of the journal's two files; "+
		"larger files mean fewer checkpoints (each one syncs every segment written since the last)")
	fs.Int64Var(&c.segmentSize, "segment-size", mmaplog.DefaultSegmentSize, "size of each log segment file in bytes")
	fs.IntVar(&c.maxConns, "max-connections", 1024, "connections served at once; more are refused with \"too many connections\"")
	fs.IntVar(&c.maxChannels, "max-channels", 64, "chains open at once on one connection")
	fs.IntVar(&c.maxPending, "max-pending", 256, "replies (appends in flight included) one connection may have outstanding before the server stops reading it")
	fs.IntVar(&c.maxFrame, "max-frame-size", proto.DefaultMaxFrameSize, "largest frame in bytes; larger frames end the connection with a clear error")
	fs.IntVar(&c.maxBatchEvents, "max-batch-events", 10000, "events in one append")
	fs.IntVar(&c.maxBatchBytes, "max-batch-bytes", 4<<20, "bytes of events in one append (also the largest event)")
	fs.DurationVar(&c.handshake, "handshake-timeout", 10*time.Second, "time allowed for a connection's hello and key exchange")
	fs.DurationVar(&c.idle, "idle-timeout", 2*time.Minute, "a connection silent this long is closed (it is pinged after half of it)")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 30*time.Second, "a client that reads nothing for this long is disconnected")
	fs.DurationVar(&c.idleClose, "idle-close", 30*time.Second, "an unused chain is closed after this long")
	fs.IntVar(&c.dedupWindow, "dedup-window", 1<<16, "recent event hashes each chain remembers to recognise retried appends")
	fs.StringVar(&c.identity, "identity", "", "file holding the server's long-term identity key, created (mode 0600) if it does not exist; "+
		"the server proves it in every encrypted handshake and prints its fingerprint, which clients pin (--server-fingerprint)")
	fs.StringVar(&c.identityAlg, "identity-alg", "ed25519", "algorithm of a new --identity key: ed25519 or ml-dsa-65 (refused for an existing key of another algorithm)")
	fs.StringVar(&c.prof.cpuPath, "cpuprofile", "", "debugging: write a CPU profile (go tool pprof) of the whole run to this file, completed at shutdown")
	fs.StringVar(&c.prof.tracePath, "trace", "", "debugging: write an execution trace (go tool trace) of the whole run to this file, completed at shutdown; it grows by megabytes per second under load")
	return &ffcli.Command{
		Name:       "solo",
		ShortUsage: "atedb [global flags] solo [flags] [logs-path]",
		ShortHelp:  "serve every chain under logs-path (default " + defaultLogsPath + ") on one TCP port",
		LongHelp: "Serves the chains stored under logs-path to clients that connect to\n" +
			"tcp://host:port/db/<chain-key>. Stop it with ctrl-c (or SIGTERM): it stops\n" +
			"accepting, finishes the appends in flight, syncs, closes the logs and exits 0.",
		FlagSet: fs,
		Options: root.options(),
		Exec:    c.exec,
	}
}

// expandHome replaces a leading "~" with the user's home directory.
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %q: %w", p, err)
	}
	return filepath.Join(home, p[1:]), nil
}

// check refuses flag combinations that would otherwise be silently
// ignored, and out-of-range values.
func (c *soloConfig) check() (mmaplog.SyncMode, error) {
	mode, err := mmaplog.ParseSyncMode(c.sync)
	if err != nil {
		return 0, usagef("--sync %q: want always or interval", c.sync)
	}
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["sync-interval"] && mode != mmaplog.SyncInterval {
		return 0, usagef("--sync-interval needs --sync interval")
	}
	if set["journal-size"] && (!c.journal || mode != mmaplog.SyncAlways) {
		return 0, usagef("--journal-size needs the journal (--sync always, --journal)")
	}
	if set["journal"] && c.journal && mode != mmaplog.SyncAlways {
		return 0, usagef("--journal needs --sync always (with --sync interval no append waits for an fdatasync)")
	}
	if c.syncInterval <= 0 {
		return 0, usagef("--sync-interval must be positive")
	}
	for name, v := range map[string]int{"max-connections": c.maxConns, "max-channels": c.maxChannels,
		"max-pending": c.maxPending, "max-frame-size": c.maxFrame, "max-batch-events": c.maxBatchEvents,
		"max-batch-bytes": c.maxBatchBytes, "dedup-window": c.dedupWindow} {
		if v <= 0 {
			return 0, usagef("--%s must be positive", name)
		}
	}
	for name, v := range map[string]time.Duration{"handshake-timeout": c.handshake, "idle-timeout": c.idle,
		"write-timeout": c.writeTimeout, "idle-close": c.idleClose} {
		if v <= 0 {
			return 0, usagef("--%s must be positive", name)
		}
	}
	if _, _, err := netio.ListenAddr(c.listen, c.port); err != nil {
		return 0, usagef("-l %q -p %d: %v", c.listen, c.port, err)
	}
	c.identityAlgSet = set["identity-alg"]
	if c.identityAlgSet && c.identity == "" {
		return 0, usagef("--identity-alg needs --identity FILE")
	}
	if _, err := parseIdentityAlg(c.identityAlg); err != nil {
		return 0, err
	}
	if c.maxBatchBytes > c.maxFrame-frameHeadroom {
		return 0, usagef("--max-batch-bytes %d must be at least %d below --max-frame-size %d, so that the largest event fits a frame with its headers and encryption",
			c.maxBatchBytes, frameHeadroom, c.maxFrame)
	}
	return mode, nil
}

func (c *soloConfig) exec(ctx context.Context, args []string) error {
	// Allow flags after the path too: atedb solo ./data -p 5555.
	if len(args) > 1 {
		if err := c.fs.Parse(args[1:]); err != nil {
			return usagef("%v", err)
		}
		if c.fs.NArg() > 0 {
			return usagef("solo takes one logs-path, got %q and %q", args[0], c.fs.Args())
		}
		args = args[:1]
	}
	mode, err := c.check()
	if err != nil {
		return err
	}
	path := defaultLogsPath
	if len(args) == 1 {
		path = args[0]
	}
	logs, err := expandHome(path)
	if err != nil {
		return err
	}
	root := c.root
	log := root.Logger
	out := root.Stdout
	storeOpts := store.Options{
		Log: mmaplog.Options{
			SegmentSize:   c.segmentSize,
			MaxRecordSize: c.maxBatchBytes,
			Sync:          mode,
			SyncInterval:  c.syncInterval,
		},
		Journal:         c.journal,
		JournalFileSize: c.journalSize,
		Logger:          log,
	}
	if err := store.CheckOptions(storeOpts); err != nil {
		return usagef("%v", err)
	}
	if err := storeOpts.Log.CheckBatchLimits(c.maxBatchEvents, c.maxBatchBytes); err != nil {
		return usagef("--segment-size, --max-batch-events and --max-batch-bytes: %v", err)
	}
	if err := c.prof.start(); err != nil {
		return err
	}
	defer func() {
		if perr := c.prof.stop(); perr != nil {
			log.Error("debugging profile incomplete", "err", perr)
		}
	}()

	var identity *kex.Identity
	identityCreated := false
	if c.identity != "" {
		file, err := expandHome(c.identity)
		if err != nil {
			return err
		}
		alg, _ := parseIdentityAlg(c.identityAlg) // checked above
		if identity, identityCreated, err = loadOrCreateIdentity(file, alg, c.identityAlgSet, log); err != nil {
			return err
		}
		c.identity = file
	}

	// One order: the storage root first (it locks the logs directory and
	// replays the journal an earlier run left), then the registry on top
	// of it, then the network.
	storage, err := store.Open(logs, storeOpts)
	if err != nil {
		return err
	}
	reg, err := chain.NewRegistry(chain.Config{
		Store:          mmapstore.New(storage),
		IdleGrace:      c.idleClose,
		DedupWindow:    c.dedupWindow,
		MaxBatchEvents: c.maxBatchEvents,
		MaxBatchBytes:  c.maxBatchBytes,
		Logger:         log,
	})
	if err != nil {
		_ = storage.Close()
		return err
	}
	closeStorage := func() error {
		err := reg.Close()
		if serr := storage.Close(); err == nil && serr != nil {
			err = fmt.Errorf("closing the logs directory: %w", serr)
		}
		return err
	}
	srv, err := netio.New(netio.Config{
		Registry:         reg,
		WireEncryption:   root.WireEncryption,
		MaxConnections:   c.maxConns,
		MaxChannels:      c.maxChannels,
		MaxPending:       c.maxPending,
		MaxFrameSize:     c.maxFrame,
		HandshakeTimeout: c.handshake,
		IdleTimeout:      c.idle,
		WriteTimeout:     c.writeTimeout,
		Identity:         identity,
		Logger:           log,
	})
	if err != nil {
		_ = closeStorage()
		return err
	}
	l, err := netio.Listen(c.listen, c.port)
	if err != nil {
		_ = closeStorage()
		return err
	}

	family := map[string]string{"tcp": "IPv4 and IPv6", "tcp4": "IPv4 only", "tcp6": "IPv6 only"}
	network, _, _ := netio.ListenAddr(c.listen, c.port)
	fmt.Fprintf(out, "atedb solo: serving the chains in %s\n", storage.Dir())
	fmt.Fprintf(out, "Listening on %s (%s); clients connect to tcp://HOST:%d%s/<chain-key>\n",
		l.Addr(), family[network], l.Addr().(*net.TCPAddr).Port, netio.Route)
	fmt.Fprintf(out, "Durability: --sync %s", mode)
	if mode == mmaplog.SyncInterval {
		fmt.Fprintf(out, " (fdatasync every %s; a power loss can lose what was confirmed since)", c.syncInterval)
	}
	if storage.Journal() != nil {
		fmt.Fprintf(out, ", commit journal in %s", filepath.Join(storage.Dir(), journal.DirName))
	}
	fmt.Fprintln(out)
	if root.WireEncryption == 0 {
		fmt.Fprintln(out, "Wire encryption: off unless a client asks for it")
	} else {
		fmt.Fprintf(out, "Wire encryption: at least %d-bit (ML-KEM, AES-GCM)\n", root.WireEncryption)
	}
	if identity != nil {
		how := "key in"
		if identityCreated {
			how = "new key written to"
		}
		fmt.Fprintf(out, "Server identity: %s (%s %s %s; clients pin it with --server-fingerprint)\n",
			identity.Fingerprint(), identity.Alg(), how, c.identity)
	}
	if !root.NoAuth {
		fmt.Fprintln(out, "Authentication is not implemented yet: every chain is open to every writer (--no-auth makes this explicit)")
	}
	fmt.Fprintln(out, "Press ctrl-c to exit")

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	var failed error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		failed = fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintln(out, "Shutting down...")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("connections still open after the shutdown grace were closed", "grace", shutdownGrace)
	}
	if failed == nil {
		if err := <-serveErr; err != nil && !errors.Is(err, netio.ErrServerClosed) {
			failed = fmt.Errorf("serve: %w", err)
		}
	}
	if err := closeStorage(); err != nil {
		return fmt.Errorf("closing the chains: %w", err)
	}
	if failed != nil {
		return failed
	}
	fmt.Fprintln(out, "Goodbye!")
	return nil
}
