package server

import (
	"io"
	"net"
	"time"
)

// lingerListener hands out connections that close gracefully: on Close they
// first shut down their write side, then read and discard what the peer still
// sends (for a short while), and only then close. Closing a TCP socket with
// unread bytes in its receive buffer sends a RST, and embedded HTTP stacks
// that write a stray "0\r\n\r\n" after a GET, or that are still writing when
// the answer arrives, die of the resulting SIGPIPE (PROTOCOL.md §8).
type lingerListener struct {
	net.Listener
	linger time.Duration
}

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc, linger: l.linger}, nil
	}
	return c, nil
}

type lingerConn struct {
	*net.TCPConn
	linger time.Duration
}

// maxDrain bounds what a closing connection reads and discards.
const maxDrain = 64 << 10

func (c *lingerConn) Close() error {
	if err := c.TCPConn.CloseWrite(); err != nil {
		return c.TCPConn.Close()
	}
	_ = c.TCPConn.SetReadDeadline(time.Now().Add(c.linger))
	// Ends at EOF (the peer closed too), at the deadline, or after maxDrain
	// bytes; each is a fine moment to close.
	_, _ = io.CopyN(io.Discard, c.TCPConn, maxDrain)
	return c.TCPConn.Close()
}
