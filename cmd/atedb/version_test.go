package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// versionRE is the shape of the --version output.
var versionRE = regexp.MustCompile(`^atedb (\S+)\ncommit: ([0-9a-f]{40}( \(dirty\))?|unknown)\ngo: (go1\S*) (\S+/\S+)\n$`)

func TestWriteVersion(t *testing.T) {
	const rev = "4f1c0d2e9ab7c2a1e0f3d6b5a4c3b2a1f0e9d8c7"
	platform := runtime.GOOS + "/" + runtime.GOARCH
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "-buildmode", Value: "exe"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-11-20T10:00:00Z"},
			{Key: "vcs.modified", Value: modified},
		}
	}
	cases := map[string]struct {
		bi   *debug.BuildInfo
		want string
	}{
		"release": {
			bi:   &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Path: "github.com/atedb/atedb", Version: "v0.3.0"}, Settings: vcs("false")},
			want: "atedb v0.3.0\ncommit: " + rev + "\ngo: go1.27.3 " + platform + "\n",
		},
		"uncommitted changes": {
			bi:   &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "v0.3.1-0.20261120100000-4f1c0d2e9ab7+dirty"}, Settings: vcs("true")},
			want: "atedb v0.3.1-0.20261120100000-4f1c0d2e9ab7+dirty\ncommit: " + rev + " (dirty)\ngo: go1.27.3 " + platform + "\n",
		},
		"no VCS information": {
			bi:   &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "(devel)"}},
			want: "atedb (devel)\ncommit: unknown\ngo: go1.27.3 " + platform + "\n",
		},
		"no build information": {
			want: "atedb (unknown)\ncommit: unknown\ngo: " + runtime.Version() + " " + platform + "\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			writeVersion(&b, tc.bi)
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
			if !versionRE.MatchString(b.String()) {
				t.Errorf("output does not have the --version shape:\n%s", b.String())
			}
		})
	}
}

// TestVersionFlag: --version, -version and -V print the version on stdout
// and exit 0, wherever they stand before a "--"; ATEDB_V (the environment
// variable of -v) is no -V.
func TestVersionFlag(t *testing.T) {
	t.Setenv("ATEDB_V", "2")
	for _, args := range [][]string{
		{"--version"},
		{"-version"},
		{"-V"},
		{"-v", "--wire-encryption", "256", "-V"},
		{"solo", "--version"},
	} {
		code, stdout, stderr := runCmd(t, context.Background(), args...)
		if code != 0 || stderr != "" || !versionRE.MatchString(stdout) {
			t.Errorf("atedb %s: exit %d, stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		if m := versionRE.FindStringSubmatch(stdout); m != nil && m[4] != runtime.Version() {
			t.Errorf("atedb %s: Go version %s, want %s", strings.Join(args, " "), m[4], runtime.Version())
		}
	}
	if code, stdout, _ := runCmd(t, context.Background(), "append", "--", "-V"); code == 0 || versionRE.MatchString(stdout) {
		t.Errorf("-V after -- was taken for --version (exit %d):\n%s", code, stdout)
	}
	// -V shows in the usage.
	if _, _, stderr := runCmd(t, context.Background(), "-h"); !strings.Contains(stderr, "atedb --version | -V") {
		t.Errorf("usage does not mention --version:\n%s", stderr)
	}
}

// TestVersionOfABuiltBinary builds atedb from this git checkout as a user
// would, with VCS stamping on (the default; some machines turn it off in
// GOFLAGS), and checks that --version names the checked-out commit and
// whether the tree had uncommitted changes.
func TestVersionOfABuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds atedb: skipped with -short")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout, or no git: %v", err)
	}
	status, err := exec.Command("git", "status", "--porcelain").Output()
	if err != nil {
		t.Fatalf("git status: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "atedb")
	build := exec.Command(goCmd, "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	info, err := exec.Command(goCmd, "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	if !bytes.Contains(info, []byte("vcs.revision=")) {
		// Go before 1.27 does not stamp a build in a git worktree.
		t.Skipf("the go command recorded no commit in the binary:\n%s", info)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("atedb --version: %v", err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("atedb --version printed:\n%s", out)
	}
	want := strings.TrimSpace(string(head))
	if len(status) > 0 {
		want += " (dirty)"
	}
	if m[2] != want {
		t.Errorf("commit: %s, want %s (from git)", m[2], want)
	}
	t.Logf("%s", out)
}
