//go:build unix

package keyfile

import "io/fs"

// checkMode refuses a private key file that the group or others may read,
// write or execute.
func checkMode(path string, m fs.FileMode) error {
	if m.Perm()&0o077 != 0 {
		return &ModeError{Path: path, Mode: m}
	}
	return nil
}
