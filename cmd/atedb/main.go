// Command atedb is the atedb redo-log server and its command-line client.
//
//	atedb [global flags] solo [flags] [logs-path]   serve chains over TCP
//	atedb [global flags] append URL                 append stdin lines as events
//	atedb [global flags] tail URL [--from N] [--follow]
//	atedb keygen [--type ed25519|ml-dsa-44|ml-dsa-65|ml-dsa-87] [-o FILE]   make a signing key pair
//
// Every flag can also be set through an environment variable named ATEDB_
// followed by the flag name in upper case with '-' as '_' (ATEDB_PORT=5555,
// ATEDB_WIRE_ENCRYPTION=256), or through a config file given with --config,
// one "flag value" per line (global and subcommand flags alike). Command-line
// flags win over the environment, which wins over the config file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/atedb/atedb/kex"
)

// envPrefix is the prefix of the environment variables that set flags.
const envPrefix = "ATEDB"

// rootConfig holds the global flags and what every subcommand shares.
// Subcommands receive it and read it in their Exec, after parsing.
//
// Subcommands are built by functions of this shape, each in its own file,
// and listed in newRootCommand:
//
//	func soloCommand(root *rootConfig) *ffcli.Command   // solo.go (server)
//	func appendCommand(root *rootConfig) *ffcli.Command // append.go (client)
//	func tailCommand(root *rootConfig) *ffcli.Command   // tail.go (client)
//
// Give a subcommand's FlagSet flag.ContinueOnError and root.options() as its
// Options, so that environment variables and the config file apply to it.
type rootConfig struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	verbose    counter
	debug      bool
	noAuth     bool
	wireEnc    string
	noWireEnc  bool
	configFile string

	// Set by resolve, before any subcommand runs.
	Logger *slog.Logger
	// WireEncryption is the resolved --wire-encryption/--no-wire-encryption:
	// the server's floor, and what a client command asks for.
	WireEncryption kex.KeySize
	// NoAuth is --no-auth.
	NoAuth bool
}

// counter is a flag that counts its repetitions (-v -v) or takes a number
// (-v=2, ATEDB_V=2).
type counter int

func (c *counter) String() string   { return strconv.Itoa(int(*c)) }
func (c *counter) IsBoolFlag() bool { return true }
func (c *counter) Set(s string) error {
	if s == "true" {
		*c++
		return nil
	}
	if s == "false" {
		*c = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a count, got %q", s)
	}
	*c = counter(n)
	return nil
}

// options returns the ff options every command uses: ATEDB_ environment
// variables and the shared config file.
func (r *rootConfig) options() []ff.Option {
	return []ff.Option{
		ff.WithEnvVarPrefix(envPrefix),
		ff.WithConfigFileVia(&r.configFile),
		ff.WithConfigFileParser(ff.PlainParser),
		ff.WithIgnoreUndefined(true), // the file holds every command's flags
	}
}

func newRootCommand(r *rootConfig) *ffcli.Command {
	fs := flag.NewFlagSet("atedb", flag.ContinueOnError)
	fs.SetOutput(r.Stderr)
	fs.Var(&r.verbose, "v", "more log output: -v info, -v -v debug (default: warnings and errors only)")
	fs.BoolVar(&r.debug, "d", false, "debug log output (same as -v -v)")
	fs.BoolVar(&r.noAuth, "no-auth", false, "run without an authentication server: anyone may write to any chain (the only mode until the auth work lands)")
	fs.StringVar(&r.wireEnc, "wire-encryption", "128", "wire encryption key size in bits: 128, 192 or 256 (a floor: clients may ask for more)")
	fs.BoolVar(&r.noWireEnc, "no-wire-encryption", false, "no wire encryption unless a client asks for it (overrides --wire-encryption)")
	fs.StringVar(&r.configFile, "config", "", "config file: one \"flag value\" per line, for any command's flags")

	root := &ffcli.Command{
		Name:       "atedb",
		ShortUsage: "atedb [global flags] <subcommand> [flags] [args]\n  atedb --version | -V",
		ShortHelp:  "atedb is a redo-log server: durable chains of events, replayed to every subscriber",
		FlagSet:    fs,
		Options: []ff.Option{
			ff.WithEnvVarPrefix(envPrefix),
			ff.WithConfigFileFlag("config"),
			ff.WithConfigFileParser(ff.PlainParser),
			ff.WithIgnoreUndefined(true),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
	// The server's subcommand, then the client's (append, tail), which
	// register through clientCommandFuncs; listing them here directly,
	// as appendCommand(r), tailCommand(r), works as well.
	root.Subcommands = []*ffcli.Command{
		soloCommand(r),
		keygenCommand(r),
	}
	root.Subcommands = append(root.Subcommands, clientCommands(r)...)
	return root
}

// clientCommands is where client subcommands register themselves; each
// client file may append to it in an init function:
//
//	func init() { clientCommandFuncs = append(clientCommandFuncs, appendCommand) }
var clientCommandFuncs []func(*rootConfig) *ffcli.Command

func clientCommands(r *rootConfig) []*ffcli.Command {
	out := make([]*ffcli.Command, 0, len(clientCommandFuncs))
	for _, f := range clientCommandFuncs {
		out = append(out, f(r))
	}
	return out
}

// resolve checks the global flags once parsed and fills Logger,
// WireEncryption and NoAuth.
func (r *rootConfig) resolve() error {
	level := slog.LevelWarn
	switch {
	case r.debug || r.verbose >= 2:
		level = slog.LevelDebug
	case r.verbose == 1:
		level = slog.LevelInfo
	}
	r.Logger = slog.New(slog.NewTextHandler(r.Stderr, &slog.HandlerOptions{Level: level}))
	r.NoAuth = r.noAuth
	if r.noWireEnc {
		r.WireEncryption = kex.KeySizeNone
		return nil
	}
	size, err := kex.ParseKeySize(r.wireEnc)
	if err != nil || size == kex.KeySizeNone {
		return fmt.Errorf("--wire-encryption %q: want 128, 192 or 256 (or --no-wire-encryption)", r.wireEnc)
	}
	r.WireEncryption = size
	return nil
}

// run parses args and runs the selected command; it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if wantsVersion(args) {
		printVersion(stdout)
		return 0
	}
	r := &rootConfig{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	root := newRootCommand(r)
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "atedb: %v\n", err)
		return 2
	}
	if err := r.resolve(); err != nil {
		fmt.Fprintf(stderr, "atedb: %v\n", err)
		return 2
	}
	if err := root.Run(ctx); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if root.FlagSet.NArg() == 0 {
				fmt.Fprintln(stderr, ffcli.DefaultUsageFunc(root))
				return 2
			}
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "atedb: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "atedb: %v\n", err)
		return 1
	}
	return 0
}

// usageError is an error in how a command was called (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
