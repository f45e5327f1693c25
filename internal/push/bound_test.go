package push

import (
	"context"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// TestBoundedMemory: what the engine holds for a thing that does not read
// is bounded by the scan page, the queue bounds and the window, not by how
// many commands are pending. (A scan that loaded every pending command, as
// the broker's did, holds all n at once.)
func TestBoundedMemory(t *testing.T) {
	const (
		n        = 60
		size     = 32 << 10
		page     = 4
		window   = 2
		queueMax = 3 * size
	)
	configure := func(c *Config, _ *countingStore) { c.PageSize, c.MaxQueueBytes = page, queueMax }
	cmdBytes := int64(0) // what one command costs the engine
	bound := func(t *testing.T, f *fixture, what string, commands int64) {
		t.Helper()
		if got, limit := f.e.peak.Load(), commands*cmdBytes; got > limit {
			t.Fatalf("%s: the engine held %d bytes at its peak, want at most %d (%d commands)", what, got, limit, commands)
		}
	}

	t.Run("scan with a small window", func(t *testing.T) {
		f := newFixture(t, configure)
		var cmds []store.Command
		for range n {
			cmds = append(cmds, f.command(t, "th.a", size))
		}
		cmdBytes = int64(commandSize(&cmds[0]))
		f.start(t)
		conn := &fakeConn{qos: 1, window: window}
		f.e.Attach("th.a", conn)
		for acked := 0; acked < n; acked++ {
			eventually(t, "a push", func() bool { return len(conn.got()) > acked })
			f.idle(t, "th.a")
			if got, want := len(conn.got()), min(acked+window, n); got != want {
				t.Fatalf("%d pushes after %d Acks, want %d", got, acked, want)
			}
			f.e.mu.Lock()
			cn := f.e.things["th.a"].conns[conn]
			f.e.mu.Unlock()
			if got := cn.entries(); got > window {
				t.Fatalf("%d in-flight entries, window %d", got, window)
			}
			f.e.Ack("th.a", conn, conn.got()[acked].packetID)
		}
		f.idle(t, "th.a")
		bound(t, f, "scans", page)
		for _, c := range cmds {
			if got, want := f.state(t, c), store.CommandDelivered; got != want {
				t.Fatalf("command %s is %s, want %s", c.ID, got, want)
			}
		}
		if got := f.e.held.Load(); got != 0 {
			t.Fatalf("the engine holds %d bytes when idle, want 0", got)
		}
	})

	t.Run("queue behind a write that does not end", func(t *testing.T) {
		f := newFixture(t, configure)
		f.start(t)
		conn := &fakeConn{qos: 0, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
		open := conn.opener(t)
		f.e.Attach("th.a", conn)
		var cmds []store.Command
		for i := range n {
			c := f.command(t, "th.a", size)
			cmdBytes = int64(commandSize(&c))
			cmds = append(cmds, c)
			f.e.Push(context.Background(), c)
			if i == 0 {
				<-conn.entered // the loop is stuck writing it
			}
		}
		// The write in progress and the queue (3 of 32 KiB), then dropped
		// for a scan.
		bound(t, f, "queued", 1+queueMax/size)
		open()
		eventually(t, "every command pushed", func() bool { return len(conn.got()) == n })
		f.idle(t, "th.a")
		bound(t, f, "queued, then scanned", 1+max(queueMax/size, page))
		for _, c := range cmds {
			if got, want := f.state(t, c), store.CommandDelivered; got != want {
				t.Fatalf("command %s is %s, want %s", c.ID, got, want)
			}
		}
		if got, want := len(conn.got()), n; got != want {
			t.Fatalf("%d pushes, want %d (each once)", got, want)
		}
	})
}

// nopConn takes every push.
type nopConn struct{}

func (nopConn) QoS() byte                                           { return 0 }
func (nopConn) Window() int                                         { return 1 }
func (nopConn) WritePush(store.Command, []byte, byte, uint16) error { return nil }

// nopStore has nothing pending and marks every command: the benchmark
// measures the engine, not the store.
type nopStore struct{}

func (nopStore) PendingThings(context.Context) ([]string, error) { return nil, nil }
func (nopStore) PendingCommands(context.Context, string, string, int) ([]store.Command, error) {
	return nil, nil
}
func (nopStore) MarkDelivered(context.Context, string, string, time.Time) (bool, error) {
	return true, nil
}

// BenchmarkPushSynced: Push of a command to a synced thing (no scan), with
// a connection that takes every write at once.
func BenchmarkPushSynced(b *testing.B) {
	e := New(Config{Store: nopStore{}})
	e.Start(context.Background())
	defer e.Close()
	e.Attach("th.1", nopConn{})
	if !e.Synced("th.1") {
		b.Fatal("not synced")
	}
	c := store.Command{ID: "c1", ThingID: "th.1", Schema: "S", SchemaVersion: 1, Actions: []byte(`[{"a":{"v":1}}]`)}
	b.ReportAllocs()
	for b.Loop() {
		e.Push(context.Background(), c)
	}
}
