package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadLine(t *testing.T) {
	for name, tc := range map[string]struct {
		in    string
		max   int
		lines []string
		err   string
	}{
		"lf":                {"a\nb\n", 10, []string{"a", "b"}, ""},
		"crlf":              {"a\r\nb\r\n", 10, []string{"a", "b"}, ""},
		"no final newline":  {"a\nlast", 10, []string{"a", "last"}, ""},
		"empty lines":       {"\n\nx\n", 10, []string{"", "", "x"}, ""},
		"exactly max":       {"abcde\n", 5, []string{"abcde"}, ""},
		"exactly max crlf":  {"abcde\r\n", 5, []string{"abcde"}, ""},
		"too long":          {"abcdef\n", 5, nil, "longer than 5 bytes"},
		"too long at eof":   {"abcdef", 5, nil, "longer than 5 bytes"},
		"longer than bufio": {strings.Repeat("z", 100) + "\n", 200, []string{strings.Repeat("z", 100)}, ""},
		"cr kept inside":    {"a\rb\n", 10, []string{"a\rb"}, ""},
		"empty input":       {"", 10, nil, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(tc.in)), 16)
			var got []string
			for {
				l, err := readLine(r, tc.max)
				if err == io.EOF {
					break
				}
				if err != nil {
					if tc.err == "" || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("error %v, want %q", err, tc.err)
					}
					return
				}
				got = append(got, string(l))
			}
			if tc.err != "" {
				t.Fatalf("no error, want %q", tc.err)
			}
			if strings.Join(got, "|") != strings.Join(tc.lines, "|") || len(got) != len(tc.lines) {
				t.Fatalf("lines %q, want %q", got, tc.lines)
			}
		})
	}
}

func TestReadLinesBatches(t *testing.T) {
	ctx := context.Background()
	in := strings.NewReader("1\n22\n333\n4444\n55555\n")
	batches := make(chan lineBatch)
	go readLines(ctx, in, batches, 2, 7)
	var all []string
	for b := range batches {
		if b.err != nil {
			t.Fatal(b.err)
		}
		if len(b.lines) > 2 {
			t.Fatalf("batch of %d lines, limit 2", len(b.lines))
		}
		size := 0
		for _, l := range b.lines {
			size += len(l)
			all = append(all, string(l))
		}
		if size > 7 && len(b.lines) > 1 {
			t.Fatalf("batch of %d bytes, limit 7", size)
		}
	}
	if got := strings.Join(all, ","); got != "1,22,333,4444,55555" {
		t.Fatalf("lines %q", got)
	}
}

func TestReadLinesReportsErrors(t *testing.T) {
	batches := make(chan lineBatch)
	boom := errors.New("boom")
	go readLines(context.Background(), io.MultiReader(strings.NewReader("ok\n"), iotest.ErrReader(boom)), batches, 10, 10)
	var sawErr error
	n := 0
	for b := range batches {
		if b.err != nil {
			sawErr = b.err
			continue
		}
		n += len(b.lines)
	}
	if n != 1 || !errors.Is(sawErr, boom) || !strings.Contains(sawErr.Error(), "stdin line 2") {
		t.Fatalf("got %d lines and error %v; want 1 line then boom at line 2", n, sawErr)
	}
}

// TestReadLinesStopsOnCancel: a refused batch cancels the reader even
// while stdin has nothing to say.
func TestReadLinesStopsOnCancel(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	batches := make(chan lineBatch)
	go readLines(ctx, pr, batches, 10, 10)
	cancel()
	select {
	case _, ok := <-batches:
		if ok {
			t.Fatalf("a batch arrived from an empty stdin")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("readLines did not stop after cancel")
	}
}

func TestAppendData(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		"":             "",
		"tab\tok":      "tab\tok",
		"new\nline":    `"new\nline"`,
		"car\rriage":   `"car\rriage"`,
		"\xff bad":     `"\xff bad"`,
		`"quoted"`:     `"\"quoted\""`,
		"ünïcode ok":   "ünïcode ok",
		`inner "ok" q`: `inner "ok" q`,
	} {
		if got := string(appendData(nil, []byte(in))); got != want {
			t.Errorf("appendData(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestTimestamperStrictlyIncreasing(t *testing.T) {
	var ts timestamper
	prev := ts.next()
	for range 10000 {
		n := ts.next()
		if n <= prev {
			t.Fatalf("timestamp %d after %d", n, prev)
		}
		prev = n
	}
	if d := time.Duration(prev - time.Now().UnixNano()); d > time.Second {
		t.Fatalf("timestamps ran %v ahead of the clock", d)
	}
}
