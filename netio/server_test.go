package netio

import (
	"fmt"
	"testing"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

func TestAppendSubscribeRoundTrip(t *testing.T) {
	for i, floor := range []kex.KeySize{kex.KeySizeNone, kex.KeySize128} {
		store := storeOpts{Real: i == 1}
		ts := startServer(t, Config{WireEncryption: floor}, chain.Config{}, store)
		for _, fam := range ts.families() {
			t.Run(fmt.Sprintf("%s/enc=%v/real-log=%v", fam, floor, store.Real), func(t *testing.T) {
				key := "rt/" + fam
				c := dial(t, ts.addrs[fam], key, kex.KeySizeNone)
				if kex.KeySize(c.ack.KeySize) != floor {
					t.Fatalf("negotiated %d, want the server's floor %v", c.ack.KeySize, floor)
				}
				expect[*proto.Opened](c)
				conf := expect[*proto.Confirmed](c.appendCheck(0, 1, testEvents("a", 3)))
				if len(conf.Offsets) != 3 || conf.Offsets[0] != 0 || conf.Offsets[2] != 2 || conf.CommitID != 1 {
					t.Fatalf("Confirmed %+v", conf)
				}
				c.send(&proto.Subscribe{Channel: 0, History: true, Live: true})
				soh := expect[*proto.StartOfHistory](c)
				if soh.Head != 3 || soh.Count != 3 {
					t.Fatalf("StartOfHistory %+v", soh)
				}
				items := eventItems(t, expect[*proto.Events](c))
				if len(items) != 3 || string(items[0].Event) != "a-0" || items[2].Offset != 2 {
					t.Fatalf("history %+v", items)
				}
				if eoh := expect[*proto.EndOfHistory](c); eoh.Next != 3 {
					t.Fatalf("EndOfHistory %+v", eoh)
				}
				// A second connection appends; the first sees it live.
				w := dial(t, ts.addrs[fam], key, kex.KeySizeNone)
				expect[*proto.Opened](w)
				expect[*proto.Confirmed](w.appendCheck(0, 7, testEvents("live", 2)))
				items = eventItems(t, expect[*proto.Events](c))
				if len(items) != 2 || items[0].Offset != 3 || string(items[1].Event) != "live-1" {
					t.Fatalf("live %+v", items)
				}
				// Unsubscribe reports where to resume.
				c.send(&proto.Unsubscribe{Channel: 0})
				if u := expect[*proto.Unsubscribed](c); u.Code != proto.CodeOK || u.Next != 5 {
					t.Fatalf("Unsubscribed %+v", u)
				}
				// Resubscribe from last+1: nothing missing, nothing twice.
				expect[*proto.Confirmed](w.appendCheck(0, 8, testEvents("gap", 1)))
				c.send(&proto.Subscribe{Channel: 0, History: true, From: 5})
				if soh := expect[*proto.StartOfHistory](c); soh.Count != 1 {
					t.Fatalf("resume StartOfHistory %+v", soh)
				}
				items = eventItems(t, expect[*proto.Events](c))
				if len(items) != 1 || items[0].Offset != 5 || string(items[0].Event) != "gap-0" {
					t.Fatalf("resume %+v", items)
				}
				expect[*proto.EndOfHistory](c)
			})
		}
	}
}

// appendCheck sends an Append and returns c, for expect chaining.
func (c *tclient) appendCheck(ch uint32, id uint64, events [][]byte) *tclient {
	c.send(&proto.Append{Channel: ch, CommitID: id, Events: events})
	return c
}

func TestNoWireEncryptionIsReallyOff(t *testing.T) {
	ts := startServer(t, Config{WireEncryption: kex.KeySizeNone}, chain.Config{}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "plain", kex.KeySizeNone)
	if c.ack.KeySize != 0 {
		t.Fatalf("negotiated %d with encryption off on both sides", c.ack.KeySize)
	}
	// The stream is plaintext: the client reads Opened without any kex.
	expect[*proto.Opened](c)
	// A client may still ask for encryption.
	c2 := dial(t, ts.addrs["v4"], "plain", kex.KeySize256)
	if c2.ack.KeySize != 256 {
		t.Fatalf("negotiated %d, want 256", c2.ack.KeySize)
	}
	expect[*proto.Opened](c2)
}
