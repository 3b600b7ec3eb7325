package client

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is the TCP port used when a URL names none; it is the port
// `atedb solo` listens on by default.
const DefaultPort = 5000

// RouteDB is the route under which the server serves chains: a chain URL is
// tcp://host:port/db/<chain-key>.
const RouteDB = "/db"

// maxURLLen bounds the URL accepted by [ParseURL]; a chain key is far
// shorter than this on every server.
const maxURLLen = 4096

// Target is a parsed chain URL.
type Target struct {
	// Addr is the "host:port" to dial; IPv6 literals are bracketed.
	Addr string
	// Route is the route part of the path, always [RouteDB] today.
	Route string
	// ChainKey is the rest of the path after the route, without the
	// leading slash. The client does not judge the key beyond its shape:
	// the server's naming policy decides and answers with a reason.
	ChainKey string
}

// Path is the path sent in the hello: the route and the chain key.
func (t Target) Path() string { return t.Route + "/" + t.ChainKey }

// String returns the URL in canonical form (escaped where needed, so
// that [ParseURL] gives t back).
func (t Target) String() string {
	u := url.URL{Scheme: "tcp", Host: t.Addr, Path: t.Path()}
	return u.String()
}

// URLError reports a chain URL that [ParseURL] cannot use.
type URLError struct {
	URL    string // the URL as given (cut to a sane length)
	Reason string // what is wrong with it
}

func (e *URLError) Error() string {
	return fmt.Sprintf("client: bad chain url %q: %s", e.URL, e.Reason)
}

// ParseURL parses a chain URL of the form tcp://host[:port]/db/<chain-key>.
// The port defaults to [DefaultPort]. Errors are *[URLError].
func ParseURL(raw string) (Target, error) {
	bad := func(reason string) (Target, error) {
		shown := raw
		if len(shown) > 256 {
			shown = shown[:256] + "..."
		}
		return Target{}, &URLError{URL: shown, Reason: reason}
	}
	if len(raw) > maxURLLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxURLLen))
	}
	if !strings.Contains(raw, "://") {
		return bad(`missing scheme, want "tcp://host:port/db/<chain-key>"`)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return bad(ue.Err.Error())
		}
		return bad(err.Error())
	}
	if u.Scheme != "tcp" {
		if u.Scheme == "" {
			return bad(`missing scheme, want "tcp://"`)
		}
		return bad(fmt.Sprintf("unsupported scheme %q, want \"tcp\"", u.Scheme))
	}
	if u.User != nil {
		return bad("user information is not supported")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return bad("query strings are not supported")
	}
	if u.Fragment != "" {
		return bad("fragments are not supported")
	}
	host := u.Hostname()
	if host == "" {
		return bad("missing host")
	}
	if strings.HasPrefix(u.Host, "[") {
		if _, err := netip.ParseAddr(host); err != nil || !strings.Contains(host, ":") {
			return bad(fmt.Sprintf("%q is not an IPv6 address", host))
		}
		// A zone names a network interface. Restrict it to the bytes an
		// interface name uses: other bytes would have to be %-escaped, and
		// net/url refuses to parse most escapes inside a zone, so the URL
		// could not be printed back (Target.String) in a form it accepts.
		if _, zone, ok := strings.Cut(host, "%"); ok && !validHostName(zone) {
			return bad(fmt.Sprintf("IPv6 zone %q: want letters, digits, '-', '_' or '.'", zone))
		}
	} else if !validHostName(host) {
		return bad(fmt.Sprintf("host %q: want a name, an IPv4 address, or an IPv6 address in brackets", host))
	}
	port := DefaultPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad(fmt.Sprintf("port %q is not in 1..65535", p))
		}
		port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("empty port")
	}
	path := u.Path
	if path != RouteDB && !strings.HasPrefix(path, RouteDB+"/") {
		return bad(fmt.Sprintf("path must start with %s/ followed by the chain key", RouteDB))
	}
	key := strings.TrimPrefix(strings.TrimPrefix(path, RouteDB), "/")
	if key == "" {
		return bad("missing chain key after " + RouteDB + "/")
	}
	t := Target{
		Addr:     net.JoinHostPort(host, strconv.Itoa(port)),
		Route:    RouteDB,
		ChainKey: key,
	}
	// Escaping can triple a key's length; bound the canonical form too, so
	// that every accepted URL prints to one this function accepts.
	if n := len(t.String()); n > maxURLLen {
		return bad(fmt.Sprintf("%d bytes once escaped, longer than %d", n, maxURLLen))
	}
	return t, nil
}

// validHostName reports whether h is a DNS name or an IPv4 address:
// letters, digits, '-', '_' and '.', at most 253 bytes.
func validHostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
