package endpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// streamOnly hides a *net.TCPConn, so that the reader takes its path for
// TLS and WebSocket connections (2-byte idle read, then Read).
type streamOnly struct{ net.Conn }

// tcpPair returns the two ends of a loopback TCP connection, the server's
// accepted by a Listener as the server accepts it.
func tcpPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	l, err := Listen(TCP, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

// readAll reads packets until an error, as the read loop does: idle, then
// packet. It returns each packet as "type:body" and the final error.
func readAll(rd *reader, max uint32) ([]string, error) {
	var got []string
	for {
		if err := rd.idle(); err != nil {
			return got, err
		}
		fh, body, err := rd.packet(max)
		if err != nil {
			return got, err
		}
		got = append(got, fmt.Sprintf("%d:%x", fh.Type, body))
	}
}

// writeChunks writes stream in pieces of the sizes given (cycled), pausing
// between them so that each reaches the server as its own segment.
func writeChunks(c net.Conn, stream []byte, sizes []int, pause time.Duration) {
	for i := 0; len(stream) > 0; i++ {
		n := min(max(sizes[i%len(sizes)], 1), len(stream))
		if _, err := c.Write(stream[:n]); err != nil {
			return
		}
		stream = stream[n:]
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

func TestReader(t *testing.T) {
	small := encode(t, 4, publish("req/a", 1, 1, "x"), packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}},
		publish("req/b", 0, 0, "y"))
	big := encode(t, 4, publish("req/big", 1, 2, strings.Repeat("z", 3*readBufferSize)), publish("req/c", 1, 3, "after"))
	var want []string
	for _, s := range [][]byte{small, big} {
		rd := &reader{}
		rd.attach(streamOnly{bytesConn{bytes.NewReader(s)}})
		got, err := readAll(rd, 0)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("reference read ended with %v", err)
		}
		want = append(want, strings.Join(got, " "))
	}
	tests := []struct {
		name   string
		stream []byte
		sizes  []int
		pause  time.Duration
		want   string
	}{
		{"packets in one write", small, []int{len(small)}, 0, want[0]},
		{"byte by byte", small, []int{1}, time.Millisecond, want[0]},
		{"header split from body", small, []int{1, 1, 3, 7}, time.Millisecond, want[0]},
		{"body larger than the buffer", big, []int{readBufferSize - 3, 5000, 1}, time.Millisecond, want[1]},
		{"large packet in one write", big, []int{len(big)}, 0, want[1]},
	}
	for _, tt := range tests {
		for _, raw := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/raw=%v", tt.name, raw), func(t *testing.T) {
				server, client := tcpPair(t)
				rd := &reader{}
				if raw {
					rd.attach(server)
					if rd.raw == nil {
						t.Fatal("a TCP connection is not read through its RawConn")
					}
				} else {
					rd.attach(streamOnly{server})
				}
				go func() {
					writeChunks(client, tt.stream, tt.sizes, tt.pause)
					client.Close()
				}()
				got, err := readAll(rd, 0)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("read ended with %v, want EOF", err)
				}
				if g := strings.Join(got, " "); g != tt.want {
					t.Fatalf("packets:\n got %.200s\nwant %.200s", g, tt.want)
				}
				if rd.bufHeld() {
					t.Fatal("the reader holds its buffer after the stream ended")
				}
			})
		}
	}
}

// TestReaderEnds: a peer gone mid-packet, a read deadline and a local
// close end a read the way the read loop expects, on both paths.
func TestReaderEnds(t *testing.T) {
	for _, raw := range []bool{true, false} {
		attach := func(rd *reader, c net.Conn) {
			if raw {
				rd.attach(c)
			} else {
				rd.attach(streamOnly{c})
			}
		}
		t.Run(fmt.Sprintf("raw=%v", raw), func(t *testing.T) {
			server, client := tcpPair(t)
			rd := &reader{}
			attach(rd, server)
			_, _ = client.Write(encode(t, 4, publish("req/a", 1, 1, "payload"))[:6])
			client.Close()
			if _, err := readAll(rd, 0); !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Fatalf("peer gone mid-packet: %v", err)
			}

			server, _ = tcpPair(t)
			rd = &reader{}
			attach(rd, server)
			_ = server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if err := rd.idle(); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read deadline: %v, want os.ErrDeadlineExceeded", err)
			}
			if rd.bufHeld() {
				t.Fatal("the reader holds a buffer after a read that found nothing")
			}

			server, _ = tcpPair(t)
			rd = &reader{}
			attach(rd, server)
			done := make(chan error, 1)
			go func() { done <- rd.idle() }()
			time.Sleep(20 * time.Millisecond)
			server.Close()
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("closed while idle: %v, want net.ErrClosed", err)
				}
			case <-time.After(waitFor):
				t.Fatal("closing the connection did not end its idle read")
			}
		})
	}
}

// bytesConn is a net.Conn reading from a byte slice (the reference
// reader's input).
type bytesConn struct{ r *bytes.Reader }

func (c bytesConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (bytesConn) Write(p []byte) (int, error)      { return len(p), nil }
func (bytesConn) Close() error                     { return nil }
func (bytesConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (bytesConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (bytesConn) SetDeadline(time.Time) error      { return nil }
func (bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (bytesConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReader: whatever the bytes and however TCP cuts them, the raw path
// reads the packets, and ends with the error, that the stream path reads
// from the same bytes in one piece.
func FuzzReader(f *testing.F) {
	f.Add([]byte{3, 7}, encode(f, 4, publish("req/a", 1, 1, "x"), publish("req/b", 0, 0, strings.Repeat("y", 300))))
	f.Add([]byte{1}, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{2}, []byte{0xc0, 0x00, 0xe0, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, cuts, stream []byte) {
		const maxSize = 1 << 14
		ref := &reader{}
		ref.attach(streamOnly{bytesConn{bytes.NewReader(stream)}})
		want, wantErr := readAll(ref, maxSize)
		sizes := []int{len(stream)}
		if len(cuts) > 0 {
			sizes = sizes[:0]
			for _, c := range cuts {
				sizes = append(sizes, int(c))
			}
		}
		server, client := tcpPair(t)
		rd := &reader{}
		rd.attach(server)
		go func() {
			writeChunks(client, stream, sizes, 0)
			client.Close()
		}()
		_ = server.SetReadDeadline(time.Now().Add(waitFor))
		got, err := readAll(rd, maxSize)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("raw path read %q, stream path %q", got, want)
		}
		// An EOF where the whole stream was in hand is io.ErrUnexpectedEOF
		// or io.EOF on either path; a decode error is the same error.
		eof := func(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }
		if eof(err) != eof(wantErr) || (!eof(err) && err.Error() != wantErr.Error()) {
			t.Fatalf("raw path ended with %v, stream path with %v", err, wantErr)
		}
	})
}
