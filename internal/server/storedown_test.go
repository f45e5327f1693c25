package server

import (
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/postgres/pgtest"
)

// cuttable is a TCP proxy to a database server that can be cut off, as a
// network partition or a database restart would.
type cuttable struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newCuttable(t *testing.T, target string) *cuttable {
	p := &cuttable{t: t, target: target}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.cut)
	return p
}

func (p *cuttable) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection through it.
func (p *cuttable) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restore listens again on the same address.
func (p *cuttable) restore() { p.listen(p.addr) }

// TestStoreUnavailable: with its PostgreSQL server cut off, a node answers
// requests that need the store with 503 SERVICE_UNAVAILABLE (nothing
// stored, retry later) and /readyz with 503; once the server is back, it
// serves again without a restart.
func TestStoreUnavailable(t *testing.T) {
	u, err := url.Parse(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCuttable(t, u.Host)
	u.Host = proxy.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	cfg := testConfig(t, t.TempDir())
	cfg.Store, cfg.Node = u.String(), "n0"
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	s := startServer(t, cfg)
	admin := adminToken(t, s)
	path := "/thing-if/apps/" + testAppID + "/things"
	if code := rest(t, s, "GET", path, admin, "", "", nil); code != 200 {
		t.Fatalf("things: %d", code)
	}

	proxy.cut()
	time.Sleep(pgCacheTTL) // the token leaves the cache
	var e struct {
		ErrorCode string `json:"errorCode"`
	}
	if code := rest(t, s, "GET", path, admin, "", "", &e); code != 503 || e.ErrorCode != "SERVICE_UNAVAILABLE" {
		t.Fatalf("things with the store cut off: %d %q, want 503 SERVICE_UNAVAILABLE", code, e.ErrorCode)
	}
	if code, body := get(t, "http://"+s.Addr("http").String()+"/readyz"); code != 503 {
		t.Fatalf("/readyz with the store cut off: %d %s", code, body)
	}

	proxy.restore()
	deadline := time.Now().Add(waitFor)
	for rest(t, s, "GET", path, admin, "", "", nil) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the node did not serve again once the store was back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
