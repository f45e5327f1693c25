package postgres_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/postgres/pgtest"
)

// openDB opens dsn until the test ends, after the leaders that run on it
// (run).
func openDB(t *testing.T, dsn string) *postgres.DB {
	db := open(t, dsn)
	t.Cleanup(func() { db.Close() })
	return db
}

// testLogger logs to t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func leader(t *testing.T, db *postgres.DB, node string, ttl time.Duration) *postgres.Leader {
	t.Helper()
	l, err := db.NewLeader(postgres.LeaderConfig{Node: node, TTL: ttl, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestAcquireLeaseRace: holders that try a new lease at once, each on a
// pool of its own, get it exactly once; the holder renews it, the others
// still do not get it.
func TestAcquireLeaseRace(t *testing.T) {
	dsn := pgtest.DSN(t)
	const holders, rounds = 8, 10
	dbs := make([]*postgres.DB, holders)
	for i := range dbs {
		dbs[i] = openDB(t, dsn)
	}
	for r := range rounds {
		name := fmt.Sprintf("job-%d", r)
		var won atomic.Int32
		var winner atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, db := range dbs {
			wg.Go(func() {
				<-start
				_, ok, err := db.AcquireLease(context.Background(), name, postgres.Holder{Node: fmt.Sprint("n", i), Incarnation: "1"}, time.Minute)
				if err != nil {
					t.Errorf("AcquireLease: %v", err)
				}
				if ok {
					won.Add(1)
					winner.Store(int32(i))
				}
			})
		}
		close(start)
		wg.Wait()
		if got := won.Load(); got != 1 {
			t.Fatalf("round %d: %d holders got the lease, want 1", r, got)
		}
		w := int(winner.Load())
		for i, db := range dbs {
			_, ok, err := db.AcquireLease(t.Context(), name, postgres.Holder{Node: fmt.Sprint("n", i), Incarnation: "1"}, time.Minute)
			if err != nil || ok != (i == w) {
				t.Fatalf("round %d: holder %d (winner %d) renews: %v, %v", r, i, w, ok, err)
			}
		}
		// A restarted node is a new holder: its earlier incarnation's
		// lease is not its own.
		if _, ok, _ := dbs[w].AcquireLease(t.Context(), name, postgres.Holder{Node: fmt.Sprint("n", w), Incarnation: "2"}, time.Minute); ok {
			t.Fatalf("round %d: a new incarnation got its node's unexpired lease", r)
		}
	}
}

// TestLeaderExclusive runs a job from several leaders on pools of their
// own, stopping and starting them at random for a few seconds: the job
// never runs twice at once, and it runs.
func TestLeaderExclusive(t *testing.T) {
	dsn := pgtest.DSN(t)
	const nodes = 4
	const ttl = 300 * time.Millisecond
	var active, ran, peak atomic.Int32
	job := func(ctx context.Context) {
		n := active.Add(1)
		for {
			m := peak.Load()
			if n <= m || peak.CompareAndSwap(m, n) {
				break
			}
		}
		ran.Add(1)
		<-ctx.Done()
		active.Add(-1)
	}
	end := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for i := range nodes {
		db := openDB(t, dsn)
		wg.Go(func() {
			for k := 0; time.Now().Before(end); k++ {
				// Each run is a new incarnation of the node, as after a
				// restart; half of them end by a release, half by being
				// left to expire (a lease released by no one).
				l := leader(t, db, fmt.Sprint("node-", i), ttl)
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(100+(i*37+k*53)%400)*time.Millisecond)
				l.Run(ctx, "singletons", job)
				cancel()
			}
		})
	}
	wg.Wait()
	if got := peak.Load(); got != 1 {
		t.Fatalf("the job ran %d times at once", got)
	}
	if ran.Load() < 2 {
		t.Fatalf("the job ran %d times in 3 s of handovers", ran.Load())
	}
}

// TestLeaseExpiryMovesJob: a holder that stops renewing (a node killed:
// nobody releases its lease) loses it when it expires, and the job moves
// to a live node at its next attempt.
func TestLeaseExpiryMovesJob(t *testing.T) {
	dsn := pgtest.DSN(t)
	dead, live := openDB(t, dsn), openDB(t, dsn)
	const ttl = 900 * time.Millisecond
	acquired := time.Now()
	if _, ok, err := dead.AcquireLease(t.Context(), "singletons", postgres.Holder{Node: "dead", Incarnation: "1"}, ttl); !ok || err != nil {
		t.Fatalf("AcquireLease: %v, %v", ok, err)
	}
	started := make(chan time.Time, 1)
	run(t, leader(t, live, "live", ttl), func(ctx context.Context) {
		started <- time.Now()
		<-ctx.Done()
	})
	select {
	case at := <-started:
		took := at.Sub(acquired)
		t.Logf("job moved %v after the dead holder's last renewal (TTL %v)", took, ttl)
		// The upper bound has room for a loaded test machine.
		if took < ttl-50*time.Millisecond || took > ttl+ttl/3+2*time.Second {
			t.Fatalf("job moved after %v, want within [TTL, TTL+TTL/3] = [%v, %v]", took, ttl, ttl+ttl/3)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job never moved")
	}
}

// TestLeaseReleaseHandsOver: a leader that ends releases its lease, and
// the next node gets it at its next attempt, long before the lease would
// have expired.
func TestLeaseReleaseHandsOver(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := openDB(t, dsn), openDB(t, dsn)
	const ttl = 3 * time.Second
	startedA, startedB := make(chan struct{}), make(chan time.Time, 1)
	actx, stopA := context.WithCancel(context.Background())
	doneA := make(chan struct{})
	go func() {
		defer close(doneA)
		leader(t, a, "a", ttl).Run(actx, "singletons", func(ctx context.Context) {
			close(startedA)
			<-ctx.Done()
		})
	}()
	<-startedA
	run(t, leader(t, b, "b", ttl), func(ctx context.Context) {
		startedB <- time.Now()
		<-ctx.Done()
	})
	time.Sleep(ttl / 2) // b tries and fails meanwhile
	stopA()
	<-doneA
	released := time.Now()
	select {
	case at := <-startedB:
		took := at.Sub(released)
		t.Logf("job moved %v after the release (TTL %v, attempts every %v)", took, ttl, ttl/3)
		// Unreleased, the lease would have lasted 2/3 TTL at least.
		if took >= 2*ttl/3 {
			t.Fatalf("job moved %v after the release, want within an attempt (%v)", took, ttl/3)
		}
	case <-time.After(ttl):
		t.Fatal("the job did not move within the TTL")
	}
}

// TestLeaseHolderStopsBeforeExpiry: a holder cut off from the database
// (its connections go through a proxy that stops passing them) stops its
// job before the lease expires on the database's clock, and the job moves
// to another node only after that.
func TestLeaseHolderStopsBeforeExpiry(t *testing.T) {
	dsn := pgtest.DSN(t)
	px := newProxy(t, dsn)
	a, b := openDB(t, px.dsn), openDB(t, dsn)
	// Before a closes: its connection attempts held by the proxy end.
	defer px.close()
	// TTL/6 = 500 ms leaves room for the check below on a loaded machine.
	const ttl = 3 * time.Second
	var mu sync.Mutex
	var events []string
	note := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	startedA, stoppedA, startedB := make(chan struct{}), make(chan time.Time, 1), make(chan struct{})
	la := leader(t, a, "a", ttl)
	run(t, la, func(ctx context.Context) {
		note("a started")
		close(startedA)
		<-ctx.Done()
		note("a stopped")
		stoppedA <- time.Now()
	})
	<-startedA
	time.Sleep(ttl / 2) // a renews once or twice
	run(t, leader(t, b, "b", ttl), func(ctx context.Context) {
		note("b started")
		close(startedB)
		<-ctx.Done()
	})

	px.cut()
	cut := time.Now()
	time.Sleep(50 * time.Millisecond) // a statement of a's on its way is done
	var expires time.Time
	if err := b.Pool().QueryRow(t.Context(), `SELECT expires_at FROM leases WHERE name = 'singletons'`).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	var stop time.Time
	select {
	case stop = <-stoppedA:
	case <-time.After(2 * ttl):
		t.Fatal("a's job runs on without renewals")
	}
	var beforeExpiry bool
	var left time.Duration
	if err := b.Pool().QueryRow(t.Context(), `SELECT clock_timestamp() < $1, $1 - clock_timestamp()`, expires).Scan(&beforeExpiry, &left); err != nil {
		t.Fatal(err)
	}
	t.Logf("a's job stopped %v after a was cut off, %v before its lease expired", stop.Sub(cut), left)
	if !beforeExpiry {
		t.Error("a's job stopped after its lease expired")
	}
	if la.Holding("singletons") {
		t.Error("a still says it holds the lease")
	}
	select {
	case <-startedB:
	case <-time.After(3 * ttl):
		t.Fatal("the job did not move to b")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "[a started a stopped b started]"; fmt.Sprint(events) != want {
		t.Fatalf("events %v, want %s", events, want)
	}
}

// run runs l's job name "singletons" until the test ends.
func run(t *testing.T, l *postgres.Leader, fn func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx, "singletons", fn)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// proxy passes TCP connections to a PostgreSQL server until cut, after
// which it closes those it passed and holds new ones without answering,
// as a network that stopped working.
type proxy struct {
	dsn string // the DSN through the proxy
	ln  net.Listener

	mu    sync.Mutex
	conns []net.Conn
	off   bool
}

func newProxy(t *testing.T, dsn string) *proxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	upstream := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = ln.Addr().String()
	p := &proxy{dsn: u.String(), ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		p.close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			off := p.off
			p.mu.Unlock()
			if off {
				continue // held, unanswered, until the test ends
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			wg.Go(func() { io.Copy(up, c); up.Close() })
			wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	return p
}

// close closes the proxy and every connection: the next ones are refused.
func (p *proxy) close() {
	p.ln.Close()
	p.cut()
}

// cut closes every connection and holds the next ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = true
	for _, c := range p.conns {
		c.Close()
	}
}
