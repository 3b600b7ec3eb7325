package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/atedb/atedb/trust"
	"github.com/atedb/atedb/trust/keyfile"
)

// keygenConfig holds the flags of `atedb keygen`.
type keygenConfig struct {
	root *rootConfig
	typ  string
	out  string
}

func keygenCommand(root *rootConfig) *ffcli.Command {
	c := &keygenConfig{root: root}
	fs := flag.NewFlagSet("atedb keygen", flag.ContinueOnError)
	fs.SetOutput(root.Stderr)
	fs.StringVar(&c.typ, "type", "ed25519", "key type: ed25519, ml-dsa-44, ml-dsa-65 or ml-dsa-87")
	fs.StringVar(&c.out, "o", "", "private key file to create (default ./atedb_TYPE); the public key goes to FILE.pub")
	return &ffcli.Command{
		Name:       "keygen",
		ShortUsage: "atedb keygen [--type ed25519|ml-dsa-44|ml-dsa-65|ml-dsa-87] [-o FILE]",
		ShortHelp:  "create a signing key pair and print its key hash",
		LongHelp: "Creates a new signing key: the private key in FILE (mode 0600) and the public key in\n" +
			"FILE.pub, both in the text format of docs/TRUST.md, and prints the key hash\n" +
			"(sha256:<64 hex digits>), the name write authorisations and root keys use for it, on\n" +
			"standard output. Neither file may exist already. Keep the private key file to yourself:\n" +
			"atedb refuses to use one that the group or others may access.",
		FlagSet: fs,
		Options: root.options(),
		Exec:    c.exec,
	}
}

func (c *keygenConfig) exec(_ context.Context, args []string) error {
	if len(args) != 0 {
		return usagef("keygen takes no arguments (the file is given with -o), got %q", args)
	}
	typ, err := trust.ParseKeyType(c.typ)
	if err != nil {
		return usagef("--type %q: want ed25519, ml-dsa-44, ml-dsa-65 or ml-dsa-87", c.typ)
	}
	path := c.out
	if path == "" {
		path = "atedb_" + typ.String()
	}
	pubPath := keyfile.PublicPath(path)
	for _, p := range []string{path, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("keygen: %s already exists (keygen never replaces a key; choose another name with -o)", p)
		}
	}
	k, err := trust.GenerateKey(typ, nil)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := keyfile.WritePrivateKey(path, k); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keygen: %s already exists (keygen never replaces a key; choose another name with -o)", path)
		}
		return fmt.Errorf("keygen: %w", err)
	}
	if err := keyfile.WritePublicKey(pubPath, k.Public()); err != nil {
		os.Remove(path) // ours, just written: no half pair left behind
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(c.root.Stderr, "atedb: wrote the %v private key to %s (mode 0600) and its public key to %s\n", typ, path, pubPath)
	fmt.Fprintln(c.root.Stdout, trust.FormatKeyHash(k.Hash()))
	return nil
}
