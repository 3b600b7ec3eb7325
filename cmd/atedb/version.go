package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// wantsVersion reports whether args ask for the version (--version,
// -version or -V, anywhere before a "--"). These are not flags of the root
// FlagSet: ff would read -V from ATEDB_V as well, the environment variable
// of -v.
func wantsVersion(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-V", "--version", "-version":
			return true
		}
	}
	return false
}

// writeVersion prints what --version shows, from the build information the
// go command records in the binary:
//
//	atedb v0.3.0
//	commit: 4f1c0d2e9ab7c2a1e0f3d6b5a4c3b2a1f0e9d8c7 (dirty)
//	go: go1.27.3 linux/amd64
//
// The version is the module's ("(devel)" for a build from a source tree);
// "(dirty)" marks a build with uncommitted changes; the commit is "unknown"
// when the build recorded none (built with -buildvcs=false, outside a git
// checkout, or as a module from the proxy). bi may be nil.
func writeVersion(w io.Writer, bi *debug.BuildInfo) {
	version, commit, goVersion := "(unknown)", "unknown", runtime.Version()
	if bi != nil {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		var revision string
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if revision != "" {
			commit = revision
			if modified {
				commit += " (dirty)"
			}
		}
	}
	fmt.Fprintf(w, "atedb %s\ncommit: %s\ngo: %s %s/%s\n", version, commit, goVersion, runtime.GOOS, runtime.GOARCH)
}

// printVersion is writeVersion with this binary's build information.
func printVersion(w io.Writer) {
	bi, _ := debug.ReadBuildInfo()
	writeVersion(w, bi)
}
