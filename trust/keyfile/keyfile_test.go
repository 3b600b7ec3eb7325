package keyfile

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
)

func testKey(t *testing.T, typ proto.KeyType) *trust.PrivateKey {
	t.Helper()
	k, err := trust.NewPrivateKey(typ, bytes.Repeat([]byte{0x5a}, trust.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWriteLoad(t *testing.T) {
	for _, typ := range trust.KeyTypes() {
		t.Run(typ.String(), func(t *testing.T) {
			k := testKey(t, typ)
			path := filepath.Join(t.TempDir(), "key")
			if err := WritePrivateKey(path, k); err != nil {
				t.Fatal(err)
			}
			if err := WritePublicKey(PublicPath(path), k.Public()); err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]fs.FileMode{path: 0o600, PublicPath(path): 0o644} {
				st, err := os.Stat(p)
				if err != nil || st.Mode().Perm() != want {
					t.Fatalf("%s: mode %v, %v; want %04o", p, st.Mode(), err, want)
				}
			}
			back, err := LoadPrivateKey(path)
			if err != nil || back.Hash() != k.Hash() {
				t.Fatalf("LoadPrivateKey = %v, %v", back, err)
			}
			pub, err := LoadPublicKey(PublicPath(path))
			if err != nil || !pub.Equal(k.Public()) {
				t.Fatalf("LoadPublicKey = %v, %v", pub, err)
			}
			if err := WritePrivateKey(path, k); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("WritePrivateKey over an existing file: %v", err)
			}
			if _, err := LoadPrivateKey(PublicPath(path)); !errors.Is(err, ErrInsecureMode) && runtime.GOOS != "windows" {
				t.Fatalf("LoadPrivateKey(public file, 0644): %v", err)
			}
			if err := os.Chmod(PublicPath(path), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadPrivateKey(PublicPath(path)); !errors.Is(err, trust.ErrBadKeyText) {
				t.Fatalf("LoadPrivateKey(public file): %v", err)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
			if len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}

func TestInsecureModeRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	k := testKey(t, proto.KeyEd25519)
	secret := hex.EncodeToString(k.SecretBinary()[1:])
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o660, 0o644, 0o620, 0o601, 0o610} {
		path := filepath.Join(t.TempDir(), "key")
		if err := WritePrivateKey(path, k); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPrivateKey(path)
		var me *ModeError
		if !errors.As(err, &me) || !errors.Is(err, ErrInsecureMode) || me.Mode.Perm() != mode {
			t.Fatalf("mode %04o: %v, want a *ModeError", mode, err)
		}
		if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "chmod 600") || strings.Contains(msg, secret) {
			t.Fatalf("mode %04o: message %q", mode, msg)
		}
	}
	for _, mode := range []fs.FileMode{0o600, 0o400, 0o700} {
		path := filepath.Join(t.TempDir(), "key")
		if err := WritePrivateKey(path, k); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadPrivateKey(path); err != nil {
			t.Fatalf("mode %04o refused: %v", mode, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, trust.MaxKeyTextSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path string
		want error
	}{
		"missing":   {filepath.Join(dir, "missing"), fs.ErrNotExist},
		"directory": {dir, nil},
		"too large": {big, nil},
		"garbage":   {garbage, trust.ErrBadKeyText},
	} {
		_, err := LoadPrivateKey(tc.path)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.HasPrefix(err.Error(), "keyfile: ") && !strings.HasPrefix(err.Error(), tc.path) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := LoadPublicKey(tc.path); err == nil {
			t.Errorf("%s: LoadPublicKey accepted it", name)
		}
	}
}
