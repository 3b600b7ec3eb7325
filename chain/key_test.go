package chain

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	good := []string{
		"a", "mydb", "example.com/joe/mydb", "group/db", "a-b_c.d/0", "x1/y2/z3",
		strings.Repeat("a", MaxSegmentLen),
		strings.Repeat("a/", MaxKeySegments-1) + "a",
		"com10", "console", "a.b.c",
	}
	for _, s := range good {
		k, err := ParseKey(s)
		if err != nil {
			t.Errorf("ParseKey(%q) = %v, want ok", s, err)
			continue
		}
		if k.String() != s {
			t.Errorf("ParseKey(%q).String() = %q", s, k.String())
		}
	}
	bad := map[string]struct {
		key  string
		want string // part of the reason
	}{
		"empty":              {"", "empty key"},
		"leading slash":      {"/a/b", "starts with '/'"},
		"trailing slash":     {"a/b/", "ends with '/'"},
		"double slash":       {"a//b", "empty segment"},
		"dotdot":             {"a/../b", "starts with '.'"},
		"dotdot alone":       {"..", "starts with '.'"},
		"dot":                {"a/./b", "starts with '.'"},
		"hidden":             {"a/.git", "starts with '.'"},
		"dotdot inside":      {"a..b", `contains ".."`},
		"tilde":              {"~/x", "'~'"},
		"tilde inside":       {"a/~root", "'~'"},
		"backslash":          {`a\..\b`, `'\'`},
		"upper":              {"MyDb", "upper-case"},
		"space":              {"a b", `' '`},
		"nul":                {"a\x00b", "byte 0x00"},
		"utf8":               {"caf\xc3\xa9", "byte 0xc3"},
		"colon":              {"c:/x", `':'`},
		"percent":            {"a%2fb", `'%'`},
		"leading dash":       {"-rf", "must start with a letter or a digit"},
		"leading underscore": {"_x", "must start with a letter or a digit"},
		"trailing dot":       {"a.", "ends with '.'"},
		"device":             {"x/nul", "reserved device name"},
		"device ext":         {"con.txt", "reserved device name"},
		"too long":           {strings.Repeat("a", MaxKeyLen+1), "bytes long"},
		"segment too long":   {strings.Repeat("a", MaxSegmentLen+1), "segment 1 is"},
		"too many segments":  {strings.Repeat("a/", MaxKeySegments) + "a", "more than"},
		"at sign":            {"a/@log", `'@'`},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			k, err := ParseKey(tc.key)
			if err == nil {
				t.Fatalf("ParseKey(%q) = %q, want error", tc.key, k)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error %T, want *KeyError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestKeyDirStaysInside(t *testing.T) {
	root := "/srv/ate"
	seen := map[string]string{}
	for _, s := range []string{"a", "a/b", "a/b/c", "b", "example.com/joe/mydb", "a.b", "ab"} {
		k, err := ParseKey(s)
		if err != nil {
			t.Fatal(err)
		}
		d := k.Dir(root)
		rel, err := filepath.Rel(root, d)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("Dir(%q) = %q escapes %q", s, d, root)
		}
		if filepath.Base(d) != LogDirName {
			t.Errorf("Dir(%q) = %q, want last element %q", s, d, LogDirName)
		}
		if other, ok := seen[d]; ok {
			t.Errorf("keys %q and %q share directory %q", s, other, d)
		}
		seen[d] = s
	}
}

func TestParsePath(t *testing.T) {
	route, key, err := ParsePath("/db/example.com/joe/mydb")
	if err != nil || route != "/db" || key.String() != "example.com/joe/mydb" {
		t.Fatalf("ParsePath = %q %q %v", route, key, err)
	}
	for _, p := range []string{"/db", "/db/", "db/x", "/db//x", "/db/../etc", ""} {
		if _, _, err := ParsePath(p); err == nil {
			t.Errorf("ParsePath(%q): no error", p)
		}
	}
}

// FuzzParseKey checks that every accepted key maps to a directory inside
// the root whose relative path spells the key back, so that two different
// keys can never share a directory.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "a//b", "A", "a.b/c-d_e", "~", "a/.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		d := k.Dir("/root")
		rel, err := filepath.Rel("/root", d)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.FromSlash(s) + string(filepath.Separator) + LogDirName; rel != want {
			t.Fatalf("key %q: dir %q, rel %q, want %q", s, d, rel, want)
		}
	})
}
