package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/kex"
)

func TestLoadOrCreateIdentity(t *testing.T) {
	for _, alg := range identityAlgs {
		t.Run(alg.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "server.key")
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			id, created, err := loadOrCreateIdentity(path, alg, true, log)
			if err != nil || !created || id.Alg() != alg {
				t.Fatalf("create: %v, created %v, alg %v", err, created, id.Alg())
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 || st.Size() != 1+kex.IdentitySeedSize {
				t.Fatalf("key file mode %v size %d, want 0600 and %d bytes", st.Mode().Perm(), st.Size(), 1+kex.IdentitySeedSize)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("directory holds %d entries, want only the key (temporary file left behind?)", len(ents))
			}
			// Loaded again: the same key, whatever --identity-alg's
			// default says when it was not given.
			other := kex.IdentityEd25519
			if alg == other {
				other = kex.IdentityMLDSA65
			}
			again, created, err := loadOrCreateIdentity(path, other, false, log)
			if err != nil || created || again.Fingerprint() != id.Fingerprint() {
				t.Fatalf("reload: %v, created %v, fingerprint %s want %s", err, created, again.Fingerprint(), id.Fingerprint())
			}
			// Asked for explicitly, another algorithm is refused.
			_, _, err = loadOrCreateIdentity(path, other, true, log)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "already holds a "+alg.String()) {
				t.Fatalf("other --identity-alg: %v, want a usage error", err)
			}
			if logs.Len() != 0 {
				t.Fatalf("unexpected log output: %s", logs.String())
			}
		})
	}
}

func TestIdentityFileRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	log := slog.New(slog.DiscardHandler)
	cases := map[string]struct {
		path string
		want string
	}{
		"garbage":         {write("garbage", []byte("not a key"), 0o600), "not a server identity key"},
		"unknown alg":     {write("alg", append([]byte{9}, make([]byte, kex.IdentitySeedSize)...), 0o600), "not a server identity key"},
		"oversized":       {write("big", make([]byte, maxIdentityFile+1), 0o600), "an identity key file holds 33"},
		"directory":       {dir, "not a regular file"},
		"no parent dir":   {filepath.Join(dir, "missing", "server.key"), "create"},
		"unreadable path": {filepath.Join(write("file", nil, 0o600), "sub"), "--identity"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := loadOrCreateIdentity(tc.path, kex.IdentityEd25519, false, log)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--identity") {
				t.Fatalf("err = %v, want one mentioning --identity and %q", err, tc.want)
			}
		})
	}
	// A key readable by others is used, with a warning.
	id, _ := kex.GenerateIdentity(kex.IdentityEd25519, nil)
	secret, _ := id.MarshalBinary()
	open := write("open.key", secret, 0o644)
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	got, _, err := loadOrCreateIdentity(open, kex.IdentityEd25519, false, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || got.Fingerprint() != id.Fingerprint() || !strings.Contains(logs.String(), "readable by other users") {
		t.Fatalf("world-readable key: %v, log %q", err, logs.String())
	}
	// createIdentity never replaces an existing file.
	before, _ := os.ReadFile(open)
	if _, err := createIdentity(open, kex.IdentityEd25519); !errors.Is(err, os.ErrExist) {
		t.Fatalf("createIdentity over an existing file: %v, want ErrExist", err)
	}
	if after, _ := os.ReadFile(open); !bytes.Equal(before, after) {
		t.Fatal("createIdentity changed an existing key file")
	}
}

func TestSoloIdentityFlags(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "ed.key")
	if _, _, err := loadOrCreateIdentity(key, kex.IdentityEd25519, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		args []string
		code int
		want string
	}{
		"alg without identity": {[]string{"solo", "--identity-alg", "ml-dsa-65", dir}, 2, "--identity-alg needs --identity"},
		"unsupported alg":      {[]string{"solo", "--identity", key, "--identity-alg", "rsa", dir}, 2, `--identity-alg "rsa"`},
		"existing, other alg":  {[]string{"solo", "-p", "0", "--identity", key, "--identity-alg", "ml-dsa-65", dir}, 2, "already holds a ed25519 identity"},
		"not a key":            {[]string{"solo", "-p", "0", "--identity", filepath.Join(dir), dir}, 1, "not a regular file"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCmd(t, context.Background(), tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

var identityRE = regexp.MustCompile(`Server identity: (sha256:[0-9a-f]{64}) \(([a-z0-9-]+) (new key written to|key in) `)

// identityLine waits for the server's identity line and returns the
// fingerprint and how the key was obtained.
func (s *solo) identityLine() (fp, how string) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := identityRE.FindStringSubmatch(s.out.String()); m != nil {
			return m[1], m[3]
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no \"Server identity\" line:\n%s", s.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestE2EServerIdentityPinning: solo --identity creates the key file on
// first start and prints its fingerprint; a client pinned to it connects
// (CLI and Go client, with and without asking for encryption), one pinned
// to another fingerprint refuses the server with the reason; a restart
// with the same file keeps the identity.
func TestE2EServerIdentityPinning(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "identity.key")
	srv := startSoloArgs(t, "127.0.0.1", 0, dir, nil, []string{"--identity", keyFile, "--identity-alg", "ml-dsa-65"})
	fp, how := srv.identityLine()
	if how != "new key written to" || !strings.Contains(srv.out.String(), "ml-dsa-65") {
		t.Fatalf("first start: %q", srv.out)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	url := srv.url("pinned/chain")
	if r := cli(t, "one\ntwo\n", "append", url); r.code != 0 {
		t.Fatalf("append: exit %d: %s", r.code, r.stderr)
	}
	other := "sha256:" + strings.Repeat("ab", 32)
	for _, global := range [][]string{nil, {"--no-wire-encryption"}} {
		r := cli(t, "", append(global, "tail", "--server-fingerprint", fp, url)...)
		if r.code != 0 || r.stdout != "0\tone\n1\ttwo\n" {
			t.Fatalf("tail %v pinned to the server's fingerprint: exit %d, stdout %q, stderr %q", global, r.code, r.stdout, r.stderr)
		}
		r = cli(t, "", append(global, "tail", "--server-fingerprint", other, url)...)
		if r.code == 0 || !strings.Contains(r.stderr, "does not match the pinned fingerprint") || r.stdout != "" {
			t.Fatalf("tail %v pinned to another fingerprint: exit %d, stdout %q, stderr %q", global, r.code, r.stdout, r.stderr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.WithPinnedFingerprint(fp))
	if err != nil {
		t.Fatalf("Go client pinned to the server: %v", err)
	}
	c.Close()
	if _, err := client.Dial(ctx, url, client.WithPinnedFingerprint(other), client.WithReconnect(false, 0, 0)); !errors.Is(err, kex.ErrFingerprintMismatch) {
		t.Fatalf("Go client pinned to another server: %v, want ErrFingerprintMismatch", err)
	}
	srv.stop()

	// Same file, restarted (this time without encryption by default): the
	// same identity, loaded; pinned clients still get their proof.
	srv = startSoloArgs(t, "127.0.0.1", 0, dir, []string{"--no-wire-encryption"}, []string{"--identity", keyFile})
	if fp2, how := srv.identityLine(); fp2 != fp || how != "key in" {
		t.Fatalf("restart: fingerprint %s (%s), want %s loaded", fp2, how, fp)
	}
	if r := cli(t, "", "--no-wire-encryption", "tail", "--server-fingerprint", fp, srv.url("pinned/chain")); r.code != 0 || r.stdout != "0\tone\n1\ttwo\n" {
		t.Fatalf("tail after restart: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
