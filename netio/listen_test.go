package netio

import (
	"net"
	"strconv"
	"testing"
	"time"
)

func TestListenAddr(t *testing.T) {
	cases := []struct{ host, network, addr string }{
		{"", "tcp", "[::]:5000"},
		{"::", "tcp", "[::]:5000"},
		{"0.0.0.0", "tcp4", "0.0.0.0:5000"},
		{"127.0.0.1", "tcp4", "127.0.0.1:5000"},
		{"::ffff:127.0.0.1", "tcp4", "127.0.0.1:5000"},
		{"::1", "tcp6", "[::1]:5000"},
		{"fe80::1%lo", "tcp6", "[fe80::1%lo]:5000"},
	}
	for _, tc := range cases {
		n, a, err := ListenAddr(tc.host, 5000)
		if err != nil || n != tc.network || a != tc.addr {
			t.Errorf("ListenAddr(%q) = %q %q %v, want %q %q", tc.host, n, a, err, tc.network, tc.addr)
		}
	}
	for _, bad := range []string{"localhost", "1.2.3", "::g"} {
		if _, _, err := ListenAddr(bad, 5000); err == nil {
			t.Errorf("ListenAddr(%q): no error", bad)
		}
	}
	if _, _, err := ListenAddr("::", 70000); err == nil {
		t.Error("port 70000 accepted")
	}
}

// dialable reports whether a TCP connection to addr succeeds.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestListenRestrictsFamilies(t *testing.T) {
	if !dialable6() {
		t.Skip("no IPv6 loopback")
	}
	cases := []struct {
		host   string
		v4, v6 bool
	}{
		{"::", true, true},
		{"0.0.0.0", true, false},
		{"127.0.0.1", true, false},
		{"::1", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			l, err := Listen(tc.host, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
			if got := dialable("127.0.0.1:" + port); got != tc.v4 {
				t.Errorf("IPv4 loopback reachable = %v, want %v", got, tc.v4)
			}
			if got := dialable("[::1]:" + port); got != tc.v6 {
				t.Errorf("IPv6 loopback reachable = %v, want %v", got, tc.v6)
			}
		})
	}
}

func dialable6() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}
