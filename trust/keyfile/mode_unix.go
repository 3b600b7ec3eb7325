//go:build unix

package keyfile

import "io/fs"

// CheckPrivateMode returns a [*ModeError] if m, the mode of the private
// key file path, lets the group or others read, write or execute it.
func CheckPrivateMode(path string, m fs.FileMode) error {
	if m.Perm()&0o077 != 0 {
		return &ModeError{Path: path, Mode: m}
	}
	return nil
}
