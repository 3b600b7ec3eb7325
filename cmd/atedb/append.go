package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/proto"
)

func init() { clientCommandFuncs = append(clientCommandFuncs, appendCommand) }

// appendConfig holds the flags of `atedb append`.
type appendConfig struct {
	root        *rootConfig
	cf          clientFlags
	batchEvents int
	batchBytes  int
}

func appendCommand(root *rootConfig) *ffcli.Command {
	c := &appendConfig{root: root}
	fs := flag.NewFlagSet("atedb append", flag.ContinueOnError)
	fs.SetOutput(root.Stderr)
	c.cf.register(fs)
	fs.IntVar(&c.batchEvents, "batch-events", 1000, "most lines sent as one atomic batch (lines already waiting on stdin are grouped)")
	fs.IntVar(&c.batchBytes, "batch-bytes", 1<<20, "most bytes of lines in one batch; a longer single line is refused")
	return &ffcli.Command{
		Name:       "append",
		ShortUsage: "atedb [global flags] append [flags] tcp://host:port/db/<chain-key> < lines",
		ShortHelp:  "append each line of stdin as one event and print its offset",
		LongHelp: "Each line read from standard input (without its line ending) becomes the data of one\n" +
			"event, stamped with the client's clock. Lines are sent in batches as they arrive and\n" +
			"each line's offset is printed, in input order, once the server has confirmed it\n" +
			"(validated and on disk). A refused batch makes the command print the server's\n" +
			"reason and exit 1; the lines confirmed before it stay appended.",
		FlagSet: fs,
		Options: root.options(),
		Exec:    c.exec,
	}
}

func (c *appendConfig) exec(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usagef("append takes one chain URL (tcp://host:port/db/<chain-key>), got %d arguments", len(args))
	}
	if c.batchEvents < 1 || c.batchEvents > 1<<20 {
		return usagef("--batch-events %d: want 1..%d", c.batchEvents, 1<<20)
	}
	if c.batchBytes < 1 || c.batchBytes > 64<<20 {
		return usagef("--batch-bytes %d: want 1..%d", c.batchBytes, 64<<20)
	}
	if _, err := client.ParseURL(args[0]); err != nil {
		return usagef("%v", err)
	}
	cl, err := c.cf.dial(ctx, c.root, args[0])
	if err != nil {
		return err
	}
	defer cl.Close()
	return appendLines(ctx, cl.Chain(), c.root.Stdin, c.root.Stdout, c.batchEvents, c.batchBytes)
}

// lineBatch is a group of stdin lines read together, or the read error
// that ended the input.
type lineBatch struct {
	lines [][]byte
	err   error
}

// appendLines sends the lines of in as events in pipelined batches and
// prints each line's offset, in order, to out.
func appendLines(ctx context.Context, ch *client.Chain, in io.Reader, out io.Writer, maxEvents, maxBytes int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan lineBatch, 4)
	go readLines(ctx, in, batches, maxEvents, maxBytes)

	futures := make(chan *client.Future, client.DefaultWindow)
	printed := make(chan error, 1)
	go func() { printed <- printOffsets(ctx, futures, out) }()

	var stamp timestamper
	var sendErr error
	for b := range batches {
		if b.err != nil {
			sendErr = b.err
			break
		}
		events := make([]proto.Event, len(b.lines))
		for i, l := range b.lines {
			events[i] = proto.Event{Timestamp: stamp.next(), Data: l}
		}
		f, err := ch.AppendAsync(ctx, client.Batch{Events: events})
		if err != nil {
			sendErr = err
			break
		}
		select {
		case futures <- f:
		case err := <-printed: // the printer stopped on a refusal
			printed <- err
			sendErr = errStopped
		}
		if sendErr != nil {
			break
		}
	}
	close(futures)
	perr := <-printed
	cancel()
	for range batches { // let the reader finish
	}
	switch {
	case perr != nil:
		return perr
	case sendErr != nil && !errors.Is(sendErr, errStopped):
		return sendErr
	}
	return nil
}

var errStopped = errors.New("stopped")

// printOffsets waits for each batch in order and prints its offsets, one
// per line; it stops at the first failed batch.
func printOffsets(ctx context.Context, futures <-chan *client.Future, out io.Writer) error {
	w := bufio.NewWriter(out)
	for f := range futures {
		offs, err := f.Wait(ctx)
		if err != nil {
			w.Flush()
			return describeAppendError(err)
		}
		for _, o := range offs {
			fmt.Fprintln(w, o)
		}
		if len(futures) == 0 {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("write offsets: %w", err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write offsets: %w", err)
	}
	return nil
}

// describeAppendError words a refused batch for a person.
func describeAppendError(err error) error {
	var ce *client.CommitError
	if errors.As(err, &ce) {
		if ce.Index >= 0 {
			return fmt.Errorf("append refused by the server (%s), line %d of its batch: %s", ce.Code, ce.Index+1, ce.Reason)
		}
		return fmt.Errorf("append refused by the server (%s): %s", ce.Code, ce.Reason)
	}
	return err
}

// timestamper hands out strictly increasing client timestamps, so that
// identical lines are distinct events (the server recognises identical
// events as retries of one another).
type timestamper struct{ last int64 }

func (t *timestamper) next() int64 {
	now := time.Now().UnixNano()
	if now <= t.last {
		now = t.last + 1
	}
	t.last = now
	return now
}

// readLines reads lines from in and groups the ones that are already
// available (up to the limits) into batches. It closes batches at EOF or
// after sending a read error.
func readLines(ctx context.Context, in io.Reader, batches chan<- lineBatch, maxEvents, maxBytes int) {
	defer close(batches)
	lines := make(chan []byte)
	errc := make(chan error, 1)
	go func() {
		defer close(lines)
		r := bufio.NewReaderSize(in, 64<<10)
		lineNo := 0
		for {
			line, err := readLine(r, maxBytes)
			lineNo++
			if line != nil {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					errc <- fmt.Errorf("stdin line %d: %w", lineNo, err)
				}
				return
			}
		}
	}()
	var cur [][]byte
	size := 0
	flush := func() bool {
		if len(cur) == 0 {
			return true
		}
		select {
		case batches <- lineBatch{lines: cur}:
		case <-ctx.Done():
			return false
		}
		cur, size = nil, 0
		return true
	}
	for {
		var line []byte
		var ok bool
		if len(cur) == 0 {
			select { // wait for input
			case line, ok = <-lines:
			case <-ctx.Done():
				return
			}
		} else {
			select {
			case line, ok = <-lines:
			default: // nothing more right now: send what we have
				if !flush() {
					return
				}
				continue
			}
		}
		if !ok {
			if !flush() {
				return
			}
			select {
			case err := <-errc:
				select {
				case batches <- lineBatch{err: err}:
				case <-ctx.Done():
				}
			default:
			}
			return
		}
		if len(cur) > 0 && (len(cur) >= maxEvents || size+len(line) > maxBytes) {
			if !flush() {
				return
			}
		}
		cur = append(cur, line)
		size += len(line)
	}
}

// readLine returns the next line without its "\n" or "\r\n", or nil and
// io.EOF at the end. A final line without a newline is returned with a
// nil error. Lines longer than max are an error.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 {
			return nil, fmt.Errorf("line longer than %d bytes (see --batch-bytes)", max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
			if len(line) > max {
				return nil, fmt.Errorf("line longer than %d bytes (see --batch-bytes)", max)
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if len(line) == 0 {
				return nil, io.EOF
			}
			if len(line) > max {
				return nil, fmt.Errorf("line longer than %d bytes (see --batch-bytes)", max)
			}
			return line, nil
		default:
			return nil, err
		}
	}
}
