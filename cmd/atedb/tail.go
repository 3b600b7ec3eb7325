package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/proto"
)

func init() { clientCommandFuncs = append(clientCommandFuncs, tailCommand) }

// tailConfig holds the flags of `atedb tail`.
type tailConfig struct {
	root   *rootConfig
	cf     clientFlags
	from   uint64
	follow bool
}

func tailCommand(root *rootConfig) *ffcli.Command {
	c := &tailConfig{root: root}
	fs := flag.NewFlagSet("atedb tail", flag.ContinueOnError)
	fs.SetOutput(root.Stderr)
	c.cf.register(fs)
	fs.Uint64Var(&c.from, "from", 0, "first offset to print")
	fs.BoolVar(&c.follow, "follow", false, "keep printing new events as they are confirmed (until interrupted)")
	return &ffcli.Command{
		Name:       "tail",
		ShortUsage: "atedb [global flags] tail [--from N] [--follow] [flags] tcp://host:port/db/<chain-key>",
		ShortHelp:  "print a chain's events as offset<TAB>data lines",
		LongHelp: "Prints every stored event from offset --from on, one line each: the offset, a tab, and\n" +
			"the event's data. Data that does not print as one line (a newline, a carriage return or\n" +
			"invalid UTF-8 in it, or a leading double quote) is printed as a quoted Go string.\n" +
			"Without --follow it exits after the events stored when it started; with --follow it\n" +
			"then prints new events as they are confirmed, resuming after a lost connection\n" +
			"without gaps or repeats, until interrupted. A tail creates nothing: a chain that\n" +
			"does not exist on the server is an error (append to it to create it).",
		FlagSet: fs,
		Options: root.options(),
		Exec:    c.exec,
	}
}

func (c *tailConfig) exec(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usagef("tail takes one chain URL (tcp://host:port/db/<chain-key>), got %d arguments", len(args))
	}
	target, err := client.ParseURL(args[0])
	if err != nil {
		return usagef("%v", err)
	}
	// Read-only: ask the server not to create the chain if it is missing.
	cl, err := c.cf.dial(ctx, c.root, args[0], client.WithExistingChainsOnly(true))
	if err != nil {
		if errors.Is(err, &proto.CodeError{Code: proto.CodeNoSuchChain}) {
			return fmt.Errorf("chain %q does not exist on %s (tail creates nothing; append to it to create it)", target.ChainKey, target.Addr)
		}
		return err
	}
	defer cl.Close()
	sub, err := cl.Subscribe(ctx, client.SubscribeOptions{History: true, From: c.from, Live: c.follow})
	if err != nil {
		var se *client.ServerError
		if errors.As(err, &se) && se.Code == proto.CodeConflict {
			return fmt.Errorf("--from %d: %s", c.from, se.Reason)
		}
		return err
	}
	defer sub.Close()
	err = printEvents(ctx, sub, c.root.Stdout)
	if c.follow && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil // interrupted: the normal way to stop following
	}
	return err
}

// printEvents prints the subscription's events until it ends (io.EOF is
// the normal end). Output is flushed whenever no event is waiting.
func printEvents(ctx context.Context, sub *client.Subscription, out io.Writer) error {
	w := bufio.NewWriterSize(out, 64<<10)
	var line []byte
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			ferr := w.Flush()
			if err == io.EOF {
				err = nil
			}
			if err == nil && ferr != nil {
				err = fmt.Errorf("write: %w", ferr)
			}
			return err
		}
		line = strconv.AppendUint(line[:0], ev.Offset, 10)
		line = append(line, '\t')
		line = appendData(line, ev.Data)
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if sub.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
}

// appendData appends data as is when it prints as one line, and as a
// quoted Go string otherwise.
func appendData(dst, data []byte) []byte {
	if utf8.Valid(data) && !containsAny(data, '\n', '\r') && (len(data) == 0 || data[0] != '"') {
		return append(dst, data...)
	}
	return strconv.AppendQuote(dst, string(data))
}

func containsAny(b []byte, c1, c2 byte) bool {
	for _, x := range b {
		if x == c1 || x == c2 {
			return true
		}
	}
	return false
}
