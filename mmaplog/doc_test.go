package mmaplog

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// TestStorageDoc checks that docs/STORAGE.md shows the bytes the code writes
// and the sizes the code uses.
func TestStorageDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/STORAGE.md")
	if err != nil {
		t.Fatalf("read docs/STORAGE.md: %v", err)
	}
	doc := string(b)
	rec := appendRecord(nil, 5, 1_700_000_000_000_000_000, 4096, flagCommit, []byte("hello"))
	var seg [segHeaderSize]byte
	putSegmentHeader(seg[:], 0x0123456789abcdef)
	for name, dump := range map[string]string{"record": hex.Dump(rec), "segment header": hex.Dump(seg[:])} {
		for _, line := range strings.Split(strings.TrimSpace(dump), "\n") {
			if !strings.Contains(doc, line) {
				t.Errorf("STORAGE.md: %s example lacks the line %q", name, line)
			}
		}
	}
	for _, want := range []string{
		`magic "ATEDBSEG"`, `"ATEDBIDX"`,
		"| segment header | 32 bytes |",
		"| record header | 32 bytes; records padded to 8 bytes |",
		"| index spacing | 64 KiB |",
		"| first segment | 1 MiB, doubling to `SegmentSize` |",
		"file size = 72 + 24·n + 4",
		"`MaxRecordSize` | default 8 MiB",
		"default 64 MiB, 4 KiB … 1 GiB",
		"prealloc.tmp", ".seg.torn-<position>",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("STORAGE.md lacks %q", want)
		}
	}
	// The constants the text above states.
	if segHeaderSize != 32 || recHeaderSize != 32 || recAlign != 8 || indexEvery != 64<<10 ||
		firstSegmentSize != 1<<20 || idxHeaderSize != 72 || idxEntrySize != 24 || idxTrailer != 4 ||
		DefaultMaxRecordSize != 8<<20 || DefaultSegmentSize != 64<<20 || MinSegmentSize != 4<<10 ||
		MaxSegmentSize != 1<<30 || segMagic != "ATEDBSEG" || idxMagic != "ATEDBIDX" ||
		preallocName != "prealloc.tmp" || tornInfix != ".torn-" {
		t.Error("a format constant changed: update docs/STORAGE.md and this test")
	}
}
