package endpoint

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestAcceptedConnKeepAlive: an accepted connection has the TCP keep-alive
// set on its listener (Linux copies it; Go no longer sets it per
// connection).
func TestAcceptedConnKeepAlive(t *testing.T) {
	server, _ := tcpPair(t)
	raw, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAliveIdle / time.Second)},
		{"TCP_KEEPINTVL", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAliveInterval / time.Second)},
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
	} {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), o.level, o.opt) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil {
			t.Fatalf("%s: %v", o.name, gerr)
		}
		if got != o.want {
			t.Errorf("%s = %d on the accepted connection, want %d", o.name, got, o.want)
		}
	}
}
