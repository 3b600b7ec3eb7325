package trust

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/atedb/atedb/proto"
)

// Key text formats: part of the key file format; never change.
//
//	private key file               public key file
//	# comment lines are ignored    # comment lines are ignored
//	atedb private key v1           atedb public key v1
//	type ml-dsa-65                 type ml-dsa-65
//	seed <64 hex digits>           key <2 × key size hex digits>
//	hash sha256:<64 hex digits>    hash sha256:<64 hex digits>
//
// ASCII text, lines ending in LF (a CR before it is ignored), at most
// MaxKeyTextSize bytes. Blank lines and lines starting with '#' are
// ignored. The first other line is the header; each line after it is a
// field name, white space, and the value. type and seed (private) or key
// (public) are required, hash is optional and, when present, must be the
// key hash of the key (a check against a damaged or hand-edited file).
// Field names appear at most once; unknown names are refused. Hex digits
// may be of either case; written files use lower case.
const (
	// PrivateKeyHeader is the first line of a private key file.
	PrivateKeyHeader = "atedb private key v1"
	// PublicKeyHeader is the first line of a public key file.
	PublicKeyHeader = "atedb public key v1"
	// MaxKeyTextSize bounds a key file: the largest (an ML-DSA-87 public
	// key, 5184 hex digits) fits with room for comments.
	MaxKeyTextSize = 16 << 10
)

// ErrBadKeyText is matched by errors for a key file that is not in the
// format above. Its messages never contain secret key material.
var ErrBadKeyText = errors.New("trust: malformed key file")

// AppendSecretText appends k in the private key file format, with a
// comment line that says to keep it secret. The result is the secret
// itself: write it with mode 0600 (package keyfile does) and clear it after
// use.
func (k *PrivateKey) AppendSecretText(dst []byte) []byte {
	dst = append(dst, "# atedb private key: keep it secret (file mode 0600)\n"...)
	dst = append(dst, PrivateKeyHeader+"\n"...)
	dst = append(dst, "type "+k.typ.String()+"\n"...)
	dst = append(dst, "seed "...)
	dst = hex.AppendEncode(dst, k.seed[:])
	dst = append(dst, "\nhash "+FormatKeyHash(k.pub.hash)+"\n"...)
	return dst
}

// AppendText appends p in the public key file format.
func (p *PublicKey) AppendText(dst []byte) []byte {
	dst = append(dst, PublicKeyHeader+"\n"...)
	dst = append(dst, "type "+p.typ.String()+"\n"...)
	dst = append(dst, "key "...)
	dst = hex.AppendEncode(dst, p.raw)
	dst = append(dst, "\nhash "+FormatKeyHash(p.hash)+"\n"...)
	return dst
}

// MarshalText returns p in the public key file format
// ([PublicKey.AppendText]); the error is always nil.
func (p *PublicKey) MarshalText() ([]byte, error) { return p.AppendText(nil), nil }

// keyText is a parsed key file: its fields by name, and the line of each.
type keyText struct {
	fields map[string]string
	lines  map[string]int
}

// parseKeyText checks the envelope (size, header, field names) of a key
// file and returns its fields. allowed lists the field names.
func parseKeyText(b []byte, header string, allowed ...string) (keyText, error) {
	kt := keyText{fields: map[string]string{}, lines: map[string]int{}}
	if len(b) > MaxKeyTextSize {
		return kt, fmt.Errorf("%w: %d bytes, limit %d", ErrBadKeyText, len(b), MaxKeyTextSize)
	}
	seenHeader := false
	for i, line := range bytes.Split(b, []byte("\n")) {
		n := i + 1
		line = bytes.TrimSuffix(line, []byte("\r"))
		for _, c := range line {
			if c >= 0x7f || (c < 0x20 && c != '\t') {
				return kt, fmt.Errorf("%w: line %d: not printable ASCII", ErrBadKeyText, n)
			}
		}
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		if !seenHeader {
			if s != header {
				return kt, fmt.Errorf("%w: line %d: want the header %q", ErrBadKeyText, n, header)
			}
			seenHeader = true
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return kt, fmt.Errorf("%w: line %d: want \"NAME VALUE\"", ErrBadKeyText, n)
		}
		name := f[0]
		known := false
		for _, a := range allowed {
			known = known || name == a
		}
		if !known {
			return kt, fmt.Errorf("%w: line %d: unknown field %s", ErrBadKeyText, n, quoteShort(name))
		}
		if _, dup := kt.fields[name]; dup {
			return kt, fmt.Errorf("%w: line %d: field %q repeated", ErrBadKeyText, n, name)
		}
		kt.fields[name], kt.lines[name] = f[1], n
	}
	if !seenHeader {
		return kt, fmt.Errorf("%w: no %q header", ErrBadKeyText, header)
	}
	return kt, nil
}

// keyType returns the required type field.
func (kt keyText) keyType() (proto.KeyType, error) {
	v, ok := kt.fields["type"]
	if !ok {
		return 0, fmt.Errorf("%w: no type field", ErrBadKeyText)
	}
	t, err := ParseKeyType(v)
	if err != nil {
		return 0, fmt.Errorf("%w: line %d: %w: %s", ErrBadKeyText, kt.lines["type"], ErrUnknownKeyType, quoteShort(v))
	}
	return t, nil
}

// quoteShort quotes s if it is short; a long word in a key file may be a
// misplaced secret, so it is only counted.
func quoteShort(s string) string {
	if len(s) <= 16 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("of %d characters", len(s))
}

// checkHash compares the optional hash field with the key's hash.
func (kt keyText) checkHash(h proto.Hash) error {
	v, ok := kt.fields["hash"]
	if !ok {
		return nil
	}
	want, err := ParseKeyHash(v)
	if err != nil {
		return fmt.Errorf("%w: line %d: %w", ErrBadKeyText, kt.lines["hash"], err)
	}
	if want != h {
		return fmt.Errorf("%w: line %d: the file names key %s but holds key %s", ErrBadKeyText, kt.lines["hash"], FormatKeyHash(want), FormatKeyHash(h))
	}
	return nil
}

// ParsePrivateKeyText parses a private key file (format above). Errors
// match [ErrBadKeyText] (and [ErrUnknownKeyType] or [ErrBadKey] where that
// is the cause); they never contain the seed.
func ParsePrivateKeyText(b []byte) (*PrivateKey, error) {
	kt, err := parseKeyText(b, PrivateKeyHeader, "type", "seed", "hash")
	if err != nil {
		return nil, err
	}
	t, err := kt.keyType()
	if err != nil {
		return nil, err
	}
	v, ok := kt.fields["seed"]
	if !ok {
		return nil, fmt.Errorf("%w: no seed field", ErrBadKeyText)
	}
	var seed [SeedSize]byte
	defer clear(seed[:])
	// The hex error would quote a character of the secret: say less.
	if len(v) != 2*SeedSize {
		return nil, fmt.Errorf("%w: line %d: seed: want %d hex digits, got %d characters", ErrBadKeyText, kt.lines["seed"], 2*SeedSize, len(v))
	}
	if _, err := hex.Decode(seed[:], []byte(v)); err != nil {
		return nil, fmt.Errorf("%w: line %d: seed: not hex", ErrBadKeyText, kt.lines["seed"])
	}
	k, err := NewPrivateKey(t, seed[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKeyText, err)
	}
	if err := kt.checkHash(k.Hash()); err != nil {
		return nil, err
	}
	return k, nil
}

// ParsePublicKeyText parses a public key file (format above). Errors match
// [ErrBadKeyText] (and [ErrUnknownKeyType] or [ErrBadKey] where that is
// the cause).
func ParsePublicKeyText(b []byte) (*PublicKey, error) {
	kt, err := parseKeyText(b, PublicKeyHeader, "type", "key", "hash")
	if err != nil {
		return nil, err
	}
	t, err := kt.keyType()
	if err != nil {
		return nil, err
	}
	v, ok := kt.fields["key"]
	if !ok {
		return nil, fmt.Errorf("%w: no key field", ErrBadKeyText)
	}
	if len(v) != 2*t.Size() {
		return nil, fmt.Errorf("%w: line %d: %v key: want %d hex digits, got %d characters", ErrBadKeyText, kt.lines["key"], t, 2*t.Size(), len(v))
	}
	raw, err := hex.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%w: line %d: key: %v", ErrBadKeyText, kt.lines["key"], err)
	}
	p, err := NewPublicKey(t, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKeyText, err)
	}
	if err := kt.checkHash(p.Hash()); err != nil {
		return nil, err
	}
	return p, nil
}
