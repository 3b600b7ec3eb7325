//go:build !unix

package main

import "errors"

func raiseNoFile(n uint64) error { return errors.New("-nofile: not supported on this system") }
