package proto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docSection returns the text of PROTOCOL.md from the heading starting
// with start up to the next heading of the same or a higher level.
func docSection(t *testing.T, doc, start string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+start)
	if i < 0 {
		t.Fatalf("PROTOCOL.md has no heading %q", start)
	}
	level := strings.Index(start, " ")
	rest := doc[i+1+len(start):]
	for j := 0; j < len(rest); {
		k := strings.Index(rest[j:], "\n#")
		if k < 0 {
			break
		}
		line := rest[j+k+1:]
		if hashes := len(line) - len(strings.TrimLeft(line, "#")); hashes <= level && strings.HasPrefix(line[hashes:], " ") {
			return rest[:j+k]
		}
		j += k + 1
	}
	return rest
}

func readProtocolDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatalf("read PROTOCOL.md: %v", err)
	}
	return string(b)
}

// TestProtocolDocMessages checks that PROTOCOL.md's message table lists
// exactly the message types the code defines, and that each has a section.
func TestProtocolDocMessages(t *testing.T) {
	doc := readProtocolDoc(t)
	table := docSection(t, doc, "### Message types")
	row := regexp.MustCompile(`(?m)^\| 0x([0-9a-f]{2}) \| (\w+) \| [^|]+ \| (yes|no) \|$`)
	documented := map[MsgType]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		v, _ := strconv.ParseUint(m[1], 16, 8)
		documented[MsgType(v)] = m[2]
		if scoped := m[3] == "yes"; scoped != MsgType(v).Scoped() {
			t.Errorf("doc says %s scoped=%v, code says %v", m[2], scoped, MsgType(v).Scoped())
		}
	}
	for _, typ := range AllMsgTypes() {
		name, ok := documented[typ]
		if !ok {
			t.Errorf("message %s (0x%02x) is missing from PROTOCOL.md's table", typ, uint8(typ))
			continue
		}
		if name != typ.String() {
			t.Errorf("0x%02x is %q in PROTOCOL.md, %q in the code", uint8(typ), name, typ.String())
		}
		heading := regexp.MustCompile(fmt.Sprintf(`(?m)^### [0-9.]+ .*0x%02x %s\b`, uint8(typ), typ.String()))
		if !heading.MatchString(doc) {
			t.Errorf("message %s has no section heading \"### n.n 0x%02x %s\"", typ, uint8(typ), typ)
		}
		delete(documented, typ)
	}
	for typ, name := range documented {
		t.Errorf("PROTOCOL.md lists 0x%02x %s, which the code does not define", uint8(typ), name)
	}
}

// TestProtocolDocErrorCodes checks the error code table against the enum.
func TestProtocolDocErrorCodes(t *testing.T) {
	doc := readProtocolDoc(t)
	table := docSection(t, doc, "## 7.")
	row := regexp.MustCompile(`(?m)^\| (\d+) \| ([a-z ]+) \| (Code\w+) \| [^|]+ \|$`)
	documented := map[ErrorCode]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		v, _ := strconv.Atoi(m[1])
		documented[ErrorCode(v)] = m[2]
	}
	for _, c := range AllErrorCodes() {
		if name, ok := documented[c]; !ok || name != c.String() {
			t.Errorf("error code %d: PROTOCOL.md says %q, code says %q", c, name, c.String())
		}
		delete(documented, c)
	}
	for c, name := range documented {
		t.Errorf("PROTOCOL.md lists error code %d %q, which the code does not define", c, name)
	}
}

// TestProtocolDocEvents checks the event field tags and key types.
func TestProtocolDocEvents(t *testing.T) {
	doc := readProtocolDoc(t)
	fields := docSection(t, doc, "### 8.1")
	row := regexp.MustCompile(`(?m)^\| 0x([0-9a-f]{2}) \| ([a-z ]+) \|`)
	var tags []int
	for _, m := range row.FindAllStringSubmatch(fields, -1) {
		v, _ := strconv.ParseUint(m[1], 16, 8)
		tags = append(tags, int(v))
	}
	want := []int{tagDataKey, tagTombstone, tagTimestamp, tagParent, tagWriteAuth, tagPublicKeys,
		tagSignatures, tagSignWith, tagTypeName, tagConfidentiality, tagIV, tagAuthor}
	if fmt.Sprint(tags) != fmt.Sprint(want) {
		t.Errorf("PROTOCOL.md event tags %v, code %v", tags, want)
	}
	keys := docSection(t, doc, "### 8.3")
	krow := regexp.MustCompile(`(?m)^\| (\d) \| [A-Za-z0-9-]+ \| (\d+) \|$`)
	n := 0
	for _, m := range krow.FindAllStringSubmatch(keys, -1) {
		typ, _ := strconv.Atoi(m[1])
		size, _ := strconv.Atoi(m[2])
		if KeyType(typ).Size() != size {
			t.Errorf("key type %d: PROTOCOL.md says %d bytes, code %d", typ, size, KeyType(typ).Size())
		}
		n++
	}
	if n != 4 {
		t.Errorf("PROTOCOL.md lists %d key types, want 4", n)
	}
	if !strings.Contains(doc, "`atedb prove v1` followed by one `00` byte (15 bytes)") || len(ProofDomain) != 15 {
		t.Error("PROTOCOL.md's proof message prefix does not match ProofDomain")
	}
}

// TestProtocolDocExamples decodes every ```hex block of PROTOCOL.md as a
// stream of frames: each body must decode as a message and re-encode to the
// same bytes; events inside Appends must decode, and their hashes must be
// the ones the document states.
func TestProtocolDocExamples(t *testing.T) {
	doc := readProtocolDoc(t)
	block := regexp.MustCompile("(?s)```hex\n(.*?)```")
	blocks := block.FindAllStringSubmatch(doc, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d hex examples, want at least 3 (hello, hello-ack, append)", len(blocks))
	}
	seen := map[MsgType]bool{}
	for i, b := range blocks {
		var hexText strings.Builder
		for _, line := range strings.Split(b[1], "\n") {
			if j := strings.Index(line, "#"); j >= 0 {
				line = line[:j]
			}
			hexText.WriteString(strings.Join(strings.Fields(line), ""))
		}
		raw, err := hex.DecodeString(hexText.String())
		if err != nil {
			t.Fatalf("example %d: bad hex: %v", i, err)
		}
		fr := NewFrameReader(bytes.NewReader(raw), 0)
		for {
			body, err := fr.ReadFrame()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("example %d: %v", i, err)
			}
			m, err := DecodeMessage(body)
			if err != nil {
				t.Fatalf("example %d: %v", i, err)
			}
			seen[m.Type()] = true
			again, err := m.AppendBinary(nil)
			if err != nil || !bytes.Equal(again, body) {
				t.Fatalf("example %d (%s) does not re-encode to itself: %v", i, m.Type(), err)
			}
			if a, ok := m.(*Append); ok {
				for j, ev := range a.Events {
					var e Event
					if err := e.Decode(ev); err != nil {
						t.Fatalf("example %d event %d: %v", i, j, err)
					}
					h, _ := EventHash(ev)
					if !strings.Contains(doc, "`"+h.String()+"`") {
						t.Errorf("example %d event %d: hash %s is not the one PROTOCOL.md states", i, j, h)
					}
				}
			}
		}
	}
	for _, typ := range []MsgType{TypeHello, TypeHelloAck, TypeAppend} {
		if !seen[typ] {
			t.Errorf("PROTOCOL.md has no worked example of %s", typ)
		}
	}
}

// blockHex returns the bytes of a ```hex block: comments dropped, spaces
// and line breaks ignored.
func blockHex(t *testing.T, block string) []byte {
	t.Helper()
	var hexText strings.Builder
	for _, line := range strings.Split(block, "\n") {
		if j := strings.Index(line, "#"); j >= 0 {
			line = line[:j]
		}
		hexText.WriteString(strings.Join(strings.Fields(line), ""))
	}
	raw, err := hex.DecodeString(hexText.String())
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return raw
}

// TestProtocolDocPasteableHex: the commented ```hex blocks cannot be fed
// to a hex decoder as they are, so each is followed by the same bytes on
// one line, which can.
func TestProtocolDocPasteableHex(t *testing.T) {
	doc := readProtocolDoc(t)
	block := regexp.MustCompile("(?s)```hex\n(.*?)```\n\nThe same bytes on one line, to paste \\(`xxd -r -p`\\):\n`([0-9a-f]+)`\n")
	all := strings.Count(doc, "```hex\n")
	found := block.FindAllStringSubmatch(doc, -1)
	if len(found) != all {
		t.Fatalf("%d of PROTOCOL.md's %d hex examples are followed by their bytes on one line", len(found), all)
	}
	for i, m := range found {
		if got := hex.EncodeToString(blockHex(t, m[1])); got != m[2] {
			t.Errorf("example %d: the one-line form %s is not the block's bytes %s", i, m[2], got)
		}
	}
}

// TestProtocolDocKexExample: in §11.12, the Hello and the HelloAck are
// spelled out in full, their stated sizes are their real sizes, and they
// are the bytes of the known-answer vector they come from.
func TestProtocolDocKexExample(t *testing.T) {
	sec := docSection(t, readProtocolDoc(t), "### 11.12")
	b, err := os.ReadFile("../kex/testdata/kat.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []map[string]any
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	var vector map[string]any
	for _, v := range vectors {
		if v["name"] == "128/none" {
			vector = v
		}
	}
	if vector == nil {
		t.Fatal("kat.json has no vector 128/none")
	}
	for _, msg := range []struct{ name, field string }{{"Hello", "hello"}, {"HelloAck", "hello_ack"}} {
		m := regexp.MustCompile(`(?m)^` + msg.name + ` \((\d+) bytes\): ` + "`([0-9a-f ]+)`").FindStringSubmatch(sec)
		if m == nil {
			t.Errorf("§11.12 does not give the %s in full as \"%s (N bytes): `hex`\"", msg.name, msg.name)
			continue
		}
		raw, err := hex.DecodeString(strings.ReplaceAll(m[2], " ", ""))
		if err != nil {
			t.Errorf("§11.12 %s: %v", msg.name, err)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n != len(raw) {
			t.Errorf("§11.12 says the %s is %d bytes; its bytes are %d", msg.name, n, len(raw))
		}
		if want, _ := vector[msg.field].(string); hex.EncodeToString(raw) != want {
			t.Errorf("§11.12 %s = %x, the vector's is %s", msg.name, raw, want)
		}
	}
}
