package endpoint

import (
	"net"
	"os"
	"syscall"
	"time"
)

// TCP keep-alive probes find the dead peers of clients that asked for no
// MQTT keep-alive. Go sets them on each accepted connection, four
// setsockopt calls per connect; Linux copies them from the listening
// socket instead, so they are set there once. The values are Go's
// defaults for accepted connections.
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 9
)

var listenConfig = net.ListenConfig{
	KeepAlive: -1, // set on the listener below, inherited by each accepted socket
	Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range [...]struct{ level, opt, v int }{
				{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAliveIdle / time.Second)},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAliveInterval / time.Second)},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
			} {
				if serr = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.v); serr != nil {
					return
				}
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return os.NewSyscallError("setsockopt (TCP keep-alive)", serr)
		}
		return nil
	},
}
