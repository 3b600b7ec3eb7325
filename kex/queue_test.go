package kex

import (
	"bytes"
	"testing"
)

// TestQueueConfirmation: with ServerConfig.QueueConfirmation the server's
// key confirmation is queued, not sent, when ServerHandshake returns; the
// client's handshake completes once the server's first frame is flushed
// with it, and that frame then opens in order (counter 1 after the
// confirmation's 0).
func TestQueueConfirmation(t *testing.T) {
	hello, ack := hellos(KeySize192)
	cliEnd, srvEnd := memPipe(nil, nil)
	type result struct {
		s   *Session
		err error
	}
	cliDone := make(chan result, 1)
	go func() {
		s, err := ClientHandshake(cliEnd, hello, ack, KeySize192, ClientConfig{})
		if err != nil {
			cliEnd.Close()
		}
		cliDone <- result{s, err}
	}()
	srv, err := ServerHandshake(srvEnd, hello, ack, KeySize192, ServerConfig{QueueConfirmation: true})
	if err != nil {
		t.Fatalf("ServerHandshake: %v", err)
	}
	if sent, queued := len(srvEnd.frames()), len(srvEnd.pending); sent != 1 || queued != 1 {
		t.Fatalf("server delivered %d frames and queued %d, want the server hello delivered and the confirmation queued", sent, queued)
	}
	select {
	case r := <-cliDone:
		t.Fatalf("client handshake returned (%v) before the server flushed its confirmation", r.err)
	default:
	}
	first := []byte("opened")
	sc := srv.Conn(srvEnd)
	if err := sc.WriteFrame(first); err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	r := <-cliDone
	if r.err != nil {
		t.Fatalf("ClientHandshake: %v", r.err)
	}
	got, err := r.s.Conn(cliEnd).ReadFrame()
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("client read %q, %v; want %q", got, err, first)
	}
	if srv.TranscriptHash() != r.s.TranscriptHash() {
		t.Fatal("transcript hashes differ")
	}
}
