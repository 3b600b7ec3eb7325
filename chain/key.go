package chain

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Limits on chain keys. A key is at most MaxKeyLen bytes, in at most
// MaxKeySegments segments of at most MaxSegmentLen bytes each, so that the
// directory a key maps to stays far below every file system's path limits.
const (
	MaxKeyLen      = 200
	MaxKeySegments = 8
	MaxSegmentLen  = 64
)

// LogDirName is the name of the directory, under a chain's key path, that
// holds the chain's log. It contains '@', which no key segment may contain,
// so the log of key "a" (<logs>/a/@log) never collides with the directory of
// key "a/b" (<logs>/a/b/@log), whatever the log's own file names are.
const LogDirName = "@log"

// Key is a validated chain key: the URL path after the route "/db", such as
// "example.com/joe/mydb". The zero Key is invalid; obtain keys from
// [ParseKey]. Keys are comparable and safe to use as map keys: two keys are
// equal exactly when they name the same chain and the same directory.
type Key struct {
	s string
}

// String returns the key as the client spelled it (which is its only
// spelling).
func (k Key) String() string { return k.s }

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return k.s == "" }

// Dir returns the directory that holds the chain's log under the logs path
// root: root/<segment>/.../<segment>/@log. The result is always inside root;
// with root "" it is relative (what package store's Root.Open takes).
func (k Key) Dir(root string) string {
	parts := make([]string, 0, MaxKeySegments+2)
	parts = append(parts, root)
	parts = append(parts, strings.Split(k.s, "/")...)
	parts = append(parts, LogDirName)
	return filepath.Join(parts...)
}

// KeyError is returned by [ParseKey] for a refused chain key. Its message
// names the key, the place and the rule, and is meant to be shown to the
// client as is.
type KeyError struct {
	Key    string // the refused key, possibly truncated for display
	Reason string // which rule it broke and where
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("chain: bad chain key %q: %s", e.Key, e.Reason)
}

// windowsReserved are device names that Windows resolves anywhere in a path
// whatever the extension; refused so that a log directory can be copied to
// any file system without two keys meeting.
var windowsReserved = map[string]bool{
	"con": true, "prn": true, "aux": true, "nul": true,
	"com0": true, "com1": true, "com2": true, "com3": true, "com4": true,
	"com5": true, "com6": true, "com7": true, "com8": true, "com9": true,
	"lpt0": true, "lpt1": true, "lpt2": true, "lpt3": true, "lpt4": true,
	"lpt5": true, "lpt6": true, "lpt7": true, "lpt8": true, "lpt9": true,
}

// ParseKey validates s as a chain key and returns it. A key is one to
// [MaxKeySegments] segments separated by single '/', with no leading or
// trailing '/'. Each segment is 1 to [MaxSegmentLen] bytes of lower-case
// ASCII letters, digits, '.', '_' and '-'; it starts with a letter or a digit
// and does not end with '.'; it contains no ".." and is not a Windows device
// name. Upper case is refused rather than folded, so that every chain has
// exactly one spelling and one directory, also on case-insensitive file
// systems. Errors are *KeyError.
func ParseKey(s string) (Key, error) {
	bad := func(format string, args ...any) (Key, error) {
		shown := s
		if len(shown) > MaxKeyLen+8 {
			shown = shown[:MaxKeyLen] + "..."
		}
		return Key{}, &KeyError{Key: shown, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case s == "":
		return bad("empty key")
	case len(s) > MaxKeyLen:
		return bad("%d bytes long, at most %d allowed", len(s), MaxKeyLen)
	case s[0] == '/':
		return bad("starts with '/' (empty first segment)")
	case s[len(s)-1] == '/':
		return bad("ends with '/' (empty last segment)")
	}
	segments := 0
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '/' {
			c := s[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			case c >= 'A' && c <= 'Z':
				return bad("upper-case %q at byte %d: keys are lower-case so that one chain has one spelling", c, i)
			case c == '~':
				return bad("'~' at byte %d is not allowed", i)
			case c == '\\':
				return bad("'\\' at byte %d is not allowed (segments are separated by '/')", i)
			case c < 0x20 || c >= 0x7f:
				return bad("byte 0x%02x at %d is not allowed (only a-z 0-9 . _ - and '/')", c, i)
			default:
				return bad("%q at byte %d is not allowed (only a-z 0-9 . _ - and '/')", c, i)
			}
			continue
		}
		seg := s[start:i]
		segments++
		switch {
		case seg == "":
			return bad("empty segment at byte %d (\"//\")", start)
		case segments > MaxKeySegments:
			return bad("more than %d segments", MaxKeySegments)
		case len(seg) > MaxSegmentLen:
			return bad("segment %d is %d bytes long, at most %d allowed", segments, len(seg), MaxSegmentLen)
		case seg[0] == '.':
			return bad("segment %d %q starts with '.' (hidden and relative segments are not allowed)", segments, seg)
		case strings.Contains(seg, ".."):
			return bad("segment %d %q contains \"..\"", segments, seg)
		case seg[0] == '-' || seg[0] == '_':
			return bad("segment %d %q must start with a letter or a digit", segments, seg)
		case seg[len(seg)-1] == '.':
			return bad("segment %d %q ends with '.'", segments, seg)
		}
		base, _, _ := strings.Cut(seg, ".")
		if windowsReserved[base] {
			return bad("segment %d %q is a reserved device name", segments, seg)
		}
		start = i + 1
	}
	return Key{s: s}, nil
}

// ParsePath splits a hello path such as "/db/example.com/joe/mydb" into its
// route ("/db") and its validated chain key. The route is the first segment;
// paths without a key are refused with a *KeyError.
func ParsePath(path string) (route string, key Key, err error) {
	if !strings.HasPrefix(path, "/") {
		return "", Key{}, &KeyError{Key: path, Reason: "path must start with '/'"}
	}
	route, rest, found := strings.Cut(path[1:], "/")
	route = "/" + route
	if !found || rest == "" {
		return route, Key{}, &KeyError{Key: "", Reason: fmt.Sprintf("path %q names no chain after the route %q", path, route)}
	}
	key, err = ParseKey(rest)
	return route, key, err
}
