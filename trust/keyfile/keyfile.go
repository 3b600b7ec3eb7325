package keyfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/atedb/atedb/trust"
)

// PublicSuffix is appended to a private key file's name to name the public
// key file written beside it ("atedb_ed25519" and "atedb_ed25519.pub").
const PublicSuffix = ".pub"

// ErrInsecureMode is matched by a [*ModeError]: a private key file that
// users other than its owner may read or write.
var ErrInsecureMode = errors.New("keyfile: private key file is accessible to other users")

// ModeError reports a private key file whose permissions let the group or
// others in. It matches [ErrInsecureMode].
type ModeError struct {
	Path string
	Mode fs.FileMode
}

// Error names the file, its mode and the fix.
func (e *ModeError) Error() string {
	return fmt.Sprintf("keyfile: private key file %s has mode %04o, accessible to other users: refusing to use it (run chmod 600 %s)", e.Path, e.Mode.Perm(), e.Path)
}

// Is makes errors.Is(err, ErrInsecureMode) true.
func (e *ModeError) Is(target error) bool { return target == ErrInsecureMode }

// PublicPath returns the name of the public key file beside the private key
// file privatePath.
func PublicPath(privatePath string) string { return privatePath + PublicSuffix }

// read opens path and returns its content, bounded by
// trust.MaxKeyTextSize. When private, a file that the group or others may
// access is refused with a *ModeError before anything is read.
func read(path string, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("keyfile: %s is not a regular file", path)
	}
	if private {
		if err := CheckPrivateMode(path, st.Mode()); err != nil {
			return nil, err
		}
	}
	if st.Size() > trust.MaxKeyTextSize {
		return nil, fmt.Errorf("keyfile: %s: %d bytes, too large for a key file (limit %d)", path, st.Size(), trust.MaxKeyTextSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, trust.MaxKeyTextSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyfile: read %s: %w", path, err)
	}
	return b, nil
}

// LoadPrivateKey reads a private key file (trust's text format). It
// refuses, with a [*ModeError], a file that the group or others may access,
// and returns errors matching trust.ErrBadKeyText for a file that is not a
// private key. No error contains key material.
func LoadPrivateKey(path string) (*trust.PrivateKey, error) {
	b, err := read(path, true)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	k, err := trust.ParsePrivateKeyText(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKey reads a public key file (trust's text format). Errors for
// a file that is not a public key match trust.ErrBadKeyText.
func LoadPublicKey(path string) (*trust.PublicKey, error) {
	b, err := read(path, false)
	if err != nil {
		return nil, err
	}
	p, err := trust.ParsePublicKeyText(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// WritePrivateKey writes k to a new file path with mode 0600 and makes it
// durable (file and directory synced). It never replaces an existing file:
// that returns an error matching fs.ErrExist.
func WritePrivateKey(path string, k *trust.PrivateKey) error {
	text := k.AppendSecretText(nil)
	defer clear(text)
	return create(path, text, 0o600)
}

// WritePublicKey writes p to a new file path with mode 0644, like
// [WritePrivateKey].
func WritePublicKey(path string, p *trust.PublicKey) error {
	return create(path, p.AppendText(nil), 0o644)
}

// create writes b to a new file path with mode perm: a temporary file in
// the same directory (created 0600), synced, then hard-linked to path (a
// link never replaces a file), then the directory synced.
func create(path string, b []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("keyfile: create %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	_, err = tmp.Write(b)
	if err == nil && perm != 0o600 {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keyfile: write %s: %w", path, err)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keyfile: %s already exists: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("keyfile: create %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyfile: sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyfile: sync directory %s: %w", dir, err)
	}
	return nil
}
