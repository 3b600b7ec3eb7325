package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
	"github.com/atedb/atedb/trust/keyfile"
)

func TestKeygen(t *testing.T) {
	ctx := context.Background()
	for _, typ := range trust.KeyTypes() {
		t.Run(typ.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			code, out, errOut := runCmd(t, ctx, "keygen", "--type", typ.String(), "-o", path)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			k, err := keyfile.LoadPrivateKey(path)
			if err != nil {
				t.Fatalf("load the private key: %v", err)
			}
			pub, err := keyfile.LoadPublicKey(path + ".pub")
			if err != nil {
				t.Fatalf("load the public key: %v", err)
			}
			if k.Type() != typ || !pub.Equal(k.Public()) {
				t.Fatalf("files hold %v and %v, want a %v pair", k, pub, typ)
			}
			if got := strings.TrimSpace(out); got != trust.FormatKeyHash(k.Hash()) {
				t.Fatalf("printed %q, want the key hash %s", got, trust.FormatKeyHash(k.Hash()))
			}
			for p, mode := range map[string]os.FileMode{path: 0o600, path + ".pub": 0o644} {
				if st, err := os.Stat(p); err != nil || st.Mode().Perm() != mode {
					t.Fatalf("%s: %v, %v; want mode %04o", p, st.Mode(), err, mode)
				}
			}
			if !strings.Contains(errOut, path) || strings.Contains(errOut+out, "seed") {
				t.Fatalf("stderr %q", errOut)
			}
			// Never replaces a key.
			if code, _, errOut := runCmd(t, ctx, "keygen", "--type", typ.String(), "-o", path); code != 1 || !strings.Contains(errOut, "already exists") {
				t.Fatalf("second keygen: exit %d, %q", code, errOut)
			}
			if again, err := keyfile.LoadPrivateKey(path); err != nil || again.Hash() != k.Hash() {
				t.Fatalf("the key changed: %v, %v", again, err)
			}
		})
	}
}

func TestKeygenDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	code, out, errOut := runCmd(t, context.Background(), "keygen")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	k, err := keyfile.LoadPrivateKey(filepath.Join(dir, "atedb_ed25519"))
	if err != nil || k.Type() != proto.KeyEd25519 || strings.TrimSpace(out) != trust.FormatKeyHash(k.Hash()) {
		t.Fatalf("default key: %v, %v, printed %q", k, err, out)
	}
	// An existing public key file alone also stops it, leaving no private key.
	if err := os.WriteFile(filepath.Join(dir, "x.pub"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCmd(t, context.Background(), "keygen", "-o", "x"); code != 1 {
		t.Fatalf("keygen over an existing x.pub: exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Fatalf("private key left behind: %v", err)
	}
}

func TestKeygenUsage(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"bad type": {"keygen", "--type", "rsa", "-o", filepath.Join(dir, "a")},
		"argument": {"keygen", "-o", filepath.Join(dir, "b"), "extra"},
		"bad flag": {"keygen", "--bits", "256"},
	} {
		if code, _, errOut := runCmd(t, context.Background(), args...); code != 2 {
			t.Errorf("%s: exit %d (%s), want 2", name, code, errOut)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors created files: %v", entries)
	}
}

// TestKeygenKeyAsServerIdentity: a key made by keygen serves as solo's
// --identity, with the key hash as its fingerprint, and is refused when
// others may read it.
func TestKeygenKeyAsServerIdentity(t *testing.T) {
	for _, typ := range []string{"ed25519", "ml-dsa-44"} {
		path := filepath.Join(t.TempDir(), "server")
		code, out, errOut := runCmd(t, context.Background(), "keygen", "--type", typ, "-o", path)
		if code != 0 {
			t.Fatalf("keygen: %s", errOut)
		}
		var logs strings.Builder
		log := slog.New(slog.NewTextHandler(&logs, nil))
		id, created, err := loadOrCreateIdentity(path, 0, false, log)
		if err != nil || created {
			t.Fatalf("%s: load: %v, created %v", typ, err, created)
		}
		if id.Fingerprint() != strings.TrimSpace(out) || id.Alg().String() != typ {
			t.Fatalf("%s: identity %s %v, keygen printed %s", typ, id.Fingerprint(), id.Alg(), out)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		if _, _, err := loadOrCreateIdentity(path, 0, false, log); !errors.Is(err, keyfile.ErrInsecureMode) {
			t.Fatalf("%s: group-readable key file: %v", typ, err)
		}
		if logs.Len() != 0 {
			t.Fatalf("log output: %s", logs.String())
		}
	}
}
