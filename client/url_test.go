package client

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	good := map[string]struct {
		url       string
		addr, key string
	}{
		"ipv4 with port":   {"tcp://127.0.0.1:5555/db/mychain", "127.0.0.1:5555", "mychain"},
		"default port":     {"tcp://localhost/db/a/b/c", "localhost:5000", "a/b/c"},
		"ipv6 with port":   {"tcp://[::1]:7000/db/x", "[::1]:7000", "x"},
		"ipv6 no port":     {"tcp://[::1]/db/x", "[::1]:5000", "x"},
		"dots kept as is":  {"tcp://h:1/db/../x", "h:1", "../x"}, // the server judges keys
		"trailing slash":   {"tcp://h:1/db/x/", "h:1", "x/"},
		"escaped segments": {"tcp://h:1/db/a%2Eb", "h:1", "a.b"},
	}
	for name, tc := range good {
		t.Run(name, func(t *testing.T) {
			got, err := ParseURL(tc.url)
			if err != nil {
				t.Fatalf("ParseURL(%q) error: %v", tc.url, err)
			}
			if got.Addr != tc.addr || got.ChainKey != tc.key || got.Route != RouteDB {
				t.Fatalf("ParseURL(%q) = %+v, want addr %q key %q", tc.url, got, tc.addr, tc.key)
			}
			if got.Path() != "/db/"+tc.key {
				t.Fatalf("Path() = %q", got.Path())
			}
		})
	}
	bad := map[string]struct{ url, reason string }{
		"no scheme":      {"127.0.0.1:5000/db/x", "scheme"},
		"http scheme":    {"http://h/db/x", "unsupported scheme"},
		"no host":        {"tcp:///db/x", "missing host"},
		"port zero":      {"tcp://h:0/db/x", "port"},
		"port too big":   {"tcp://h:70000/db/x", "port"},
		"empty port":     {"tcp://h:/db/x", "empty port"},
		"wrong route":    {"tcp://h/auth/x", "path must start with /db/"},
		"route prefix":   {"tcp://h/dbx/y", "path must start with /db/"},
		"no chain":       {"tcp://h/db/", "missing chain key"},
		"route only":     {"tcp://h/db", "missing chain key"},
		"query":          {"tcp://h/db/x?a=1", "query"},
		"fragment":       {"tcp://h/db/x#f", "fragment"},
		"userinfo":       {"tcp://u:p@h/db/x", "user information"},
		"too long":       {"tcp://h/db/" + strings.Repeat("a", maxURLLen), "longer than"},
		"unparsable":     {"tcp://[::1/db/x", "bad chain url"},
		"control in url": {"tcp://h/db/a\x00b", "bad chain url"},
		"bare ipv6":      {"tcp://::1/db/x", "want a name"},
		"odd host chars": {"tcp://a!b/db/x", "want a name"},
		"bracketed name": {"tcp://[localhost]/db/x", "invalid"},
		"bracketed ipv4": {"tcp://[127.0.0.1]/db/x", "invalid"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseURL(tc.url)
			var ue *URLError
			if !errors.As(err, &ue) {
				t.Fatalf("ParseURL(%q) error = %v, want *URLError", tc.url, err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("ParseURL(%q) error %q does not mention %q", tc.url, err, tc.reason)
			}
			if len(ue.URL) > 300 {
				t.Fatalf("error quotes %d bytes of URL, want it cut", len(ue.URL))
			}
		})
	}
}
