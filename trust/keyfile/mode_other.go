//go:build !unix

package keyfile

import "io/fs"

// CheckPrivateMode accepts every file: outside Unix, permission bits do
// not tell who may read a file (Windows uses ACLs), so the check is the
// operator's.
func CheckPrivateMode(string, fs.FileMode) error { return nil }
