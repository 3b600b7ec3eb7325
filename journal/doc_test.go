package journal

import (
	"os"
	"strings"
	"testing"
)

// TestStorageDoc checks that docs/STORAGE.md states the journal's layout
// and limits as the code has them.
func TestStorageDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/STORAGE.md")
	if err != nil {
		t.Fatalf("read docs/STORAGE.md: %v", err)
	}
	doc := string(b)
	for _, want := range []string{
		`magic "ATEDBJCK"`, "| journal record header | 56 bytes; records padded to 8 bytes |",
		"| journal file | default 64 MiB, at least 64 KiB |", "`MaxGroup` | default 1 MiB",
		"<root>/.journal/", "checkpoint      24 bytes",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("STORAGE.md lacks %q", want)
		}
	}
	if recHeaderSize != 56 || ckptMagic != "ATEDBJCK" || ckptSize != 24 || DirName != ".journal" || recAlign != 8 ||
		DefaultFileSize != 64<<20 || MinFileSize != 64<<10 || DefaultMaxGroup != 1<<20 || maxDirLen != 4096 {
		t.Error("a format constant changed: update docs/STORAGE.md and this test")
	}
}
