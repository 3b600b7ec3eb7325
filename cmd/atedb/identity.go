package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/trust"
	"github.com/atedb/atedb/trust/keyfile"
)

// maxIdentityFile bounds what is read from an identity file: an encoded
// identity is 1+kex.IdentitySeedSize bytes; anything much larger is not one.
const maxIdentityFile = 4 << 10

// identityAlgs are the algorithms --identity-alg accepts for a new key.
var identityAlgs = []kex.IdentityAlg{kex.IdentityEd25519, kex.IdentityMLDSA65}

// parseIdentityAlg parses an --identity-alg value.
func parseIdentityAlg(s string) (kex.IdentityAlg, error) {
	alg, err := kex.ParseIdentityAlg(s)
	if err == nil {
		for _, a := range identityAlgs {
			if a == alg {
				return alg, nil
			}
		}
	}
	names := make([]string, len(identityAlgs))
	for i, a := range identityAlgs {
		names[i] = a.String()
	}
	return 0, usagef("--identity-alg %q: want %s", s, strings.Join(names, " or "))
}

// loadOrCreateIdentity returns the server identity stored in path, or,
// if path does not exist, creates one of alg there durably (mode 0600:
// temporary file, fsync, link or rename into place, fsync of the
// directory) and reports created. wantAlg means --identity-alg was given:
// an existing key of another algorithm is then refused rather than used.
// Errors name the file; none contains secret bytes.
func loadOrCreateIdentity(path string, alg kex.IdentityAlg, wantAlg bool, log *slog.Logger) (id *kex.Identity, created bool, err error) {
	id, err = readIdentity(path, log)
	if errors.Is(err, fs.ErrNotExist) {
		id, err = createIdentity(path, alg)
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			id, err = readIdentity(path, log)
		} else if err == nil {
			return id, true, nil
		}
	}
	if err != nil {
		return nil, false, err
	}
	if wantAlg && id.Alg() != alg {
		return nil, false, usagef("--identity-alg %s: %s already holds a %s identity (drop --identity-alg to use it, or give another file)",
			alg, path, id.Alg())
	}
	return id, false, nil
}

// readIdentity reads and parses the identity file path: the 33-byte binary
// form it creates, or a private key file in trust's text format (atedb
// keygen's, refused when others may access it). A missing file gives an
// error matching fs.ErrNotExist.
func readIdentity(path string, log *slog.Logger) (*kex.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("--identity: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("--identity: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("--identity %s: not a regular file", path)
	}
	if st.Size() > maxIdentityFile {
		return nil, fmt.Errorf("--identity %s: %d bytes; an identity key file holds %d, or is a private key file from atedb keygen", path, st.Size(), 1+kex.IdentitySeedSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxIdentityFile+1))
	defer clear(b)
	if err != nil {
		return nil, fmt.Errorf("--identity %s: read: %w", path, err)
	}
	if len(b) != 1+kex.IdentitySeedSize {
		// Not the binary form: a private key file from atedb keygen, whose
		// mode is checked as for every key file of that format.
		if err := keyfile.CheckPrivateMode(path, st.Mode()); err != nil {
			return nil, fmt.Errorf("--identity: %w", err)
		}
		k, err := trust.ParsePrivateKeyText(b)
		if err != nil {
			return nil, fmt.Errorf("--identity %s: not a server identity key: %w", path, err)
		}
		return kex.IdentityFromKey(k), nil
	}
	if st.Mode().Perm()&0o077 != 0 {
		log.Warn("the server identity key file is readable by other users; it should have mode 0600",
			"file", path, "mode", st.Mode().Perm().String())
	}
	id, err := kex.ParseIdentity(b)
	if err != nil {
		return nil, fmt.Errorf("--identity %s: not a server identity key: %w", path, err)
	}
	return id, nil
}

// createIdentity generates an identity of alg and stores it in path,
// which must not exist (an error matching fs.ErrExist if it appears
// meanwhile).
func createIdentity(path string, alg kex.IdentityAlg) (*kex.Identity, error) {
	id, err := kex.GenerateIdentity(alg, nil)
	if err != nil {
		return nil, fmt.Errorf("--identity %s: %w", path, err)
	}
	secret, _ := id.MarshalBinary()
	defer clear(secret)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("--identity %s: create: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a link, or a failure; gone after a rename
	_, err = tmp.Write(secret)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("--identity %s: write: %w", path, err)
	}
	// A hard link never replaces a file that appeared meanwhile; where
	// links are not supported, rename.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if err := os.Rename(tmpName, path); err != nil {
			return nil, fmt.Errorf("--identity %s: %w", path, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("--identity %s: %w", path, err)
	}
	return id, nil
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
