package endpoint

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkIdleConnMemory reports what the server side of an idle
// connection costs, in Go heap and goroutine stack bytes: b.N clients
// connect and subscribe, then sit idle. (RSS beside mosquitto's is
// bench/compare.sh's; this isolates the endpoint from the rest of the
// server.)
func BenchmarkIdleConnMemory(b *testing.B) {
	h := &recorder{}
	l, err := Listen(TCP, "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{MaxConnsPerAddr: -1}, h, l)
	if err != nil {
		b.Fatal(err)
	}
	s.Start()
	defer s.Close()
	n := max(b.N, 1000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	sub := encode(b, 4, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "ok/1", Qos: 1}}})
	for i := range n {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := c.Write(append(encode(b, 4, connectPacket(fmt.Sprint("c", i), 0)), sub...)); err != nil {
			b.Fatal(err)
		}
		ack := make([]byte, 4+5) // CONNACK, SUBACK
		_ = c.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := io.ReadFull(c, ack); err != nil {
			b.Fatal(err)
		}
	}
	for s.Connections() != int64(n) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(n), "heap-B/conn")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/float64(n), "stack-B/conn")
	b.ReportMetric(0, "ns/op")
}
