package netio

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Listen opens the TCP listener for host and port with the meaning a person
// expects from `atedb solo -l HOST -p PORT`:
//
//	"::" or ""        every interface, IPv4 and IPv6 (dual stack)
//	"0.0.0.0"         every IPv4 interface only
//	"127.0.0.1"       IPv4 loopback only (any other IPv4 address: that address only)
//	"::1"             IPv6 loopback only (any other IPv6 address: that address only)
//
// Go's "tcp" network would make "0.0.0.0" dual stack too; Listen uses
// "tcp4" for IPv4 addresses and "tcp6" for IPv6 ones other than "::", so
// that -l restricts exactly as written. host must be an IP address (no
// name resolution); an IPv6 zone ("fe80::1%eth0") is allowed. Port 0 picks
// a free port.
//
// Accepted connections have no TCP keep-alive: the server's own idle
// timeout (a Ping after Config.IdleTimeout/2 of silence, the close after
// IdleTimeout) finds a dead peer sooner than Go's default probes would
// (15 s idle, then 9 probes 15 s apart), and saves the four setsockopt
// calls that turn them on for every connection.
func Listen(host string, port int) (net.Listener, error) {
	network, addr, err := ListenAddr(host, port)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("netio: listen on %s (%s): %w", addr, network, err)
	}
	return l, nil
}

// ListenAddr returns the network and address Listen uses for host and port.
func ListenAddr(host string, port int) (network, addr string, err error) {
	if port < 0 || port > 65535 {
		return "", "", fmt.Errorf("netio: port %d out of range 0-65535", port)
	}
	p := strconv.Itoa(port)
	if host == "" || host == "::" {
		return "tcp", net.JoinHostPort("::", p), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", "", fmt.Errorf("netio: listen address %q is not an IP address: %w", host, err)
	}
	if ip.Is4() || ip.Is4In6() {
		return "tcp4", net.JoinHostPort(ip.Unmap().String(), p), nil
	}
	return "tcp6", net.JoinHostPort(ip.String(), p), nil
}
