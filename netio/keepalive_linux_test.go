package netio

import (
	"net"
	"syscall"
	"testing"
)

// TestListenNoKeepAlive: connections accepted from Listen have TCP
// keep-alive off (the idle timeout's Ping does that job) and TCP_NODELAY
// on (Go's default, which serve relies on).
func TestListenNoKeepAlive(t *testing.T) {
	l, err := Listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	raw, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var keepAlive, noDelay int
	var optErr error
	if err := raw.Control(func(fd uintptr) {
		if keepAlive, optErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); optErr != nil {
			return
		}
		noDelay, optErr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
	}); err != nil || optErr != nil {
		t.Fatalf("getsockopt: %v %v", err, optErr)
	}
	if keepAlive != 0 || noDelay == 0 {
		t.Fatalf("accepted connection: SO_KEEPALIVE=%d TCP_NODELAY=%d, want 0 and on", keepAlive, noDelay)
	}
}
