package thing_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingif/thingif/thing"
)

// gate is a Backoff that can hold reconnection attempts: while closed,
// every attempt after the first waits until it is opened.
type gate struct {
	mu      sync.Mutex
	open    chan struct{}
	waiting chan struct{} // receives when an attempt waits
}

func newGate() *gate {
	g := &gate{open: make(chan struct{}), waiting: make(chan struct{}, 1)}
	close(g.open)
	return g
}

func (g *gate) close() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) release() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

func (g *gate) backoff(attempt int) time.Duration {
	if attempt == 0 {
		return 0
	}
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	default:
		select {
		case g.waiting <- struct{}{}:
		default:
		}
		<-open
	}
	return 10 * time.Millisecond
}

// TestServerRestart stops the server under a connected client, queues
// commands on a new server on the same data dir and ports while the client
// is still away, and sees the client reconnect and handle them.
func TestServerRestart(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	g := newGate()
	rec := newRecorder(true)
	cfg := s.thingConfig(t, "vt-restart")
	cfg.Backoff = g.backoff
	cfg.OnCommand = rec.handle
	c := startClient(t, cfg)
	id := c.ThingID()
	admin := s.adminToken(t)
	cid := s.sendCommand(t, admin, id, v1Command)
	s.awaitCommandState(t, admin, id, cid)

	g.close()
	s = s.restart(t)
	select {
	case <-g.waiting: // the client failed to reconnect and waits
	case <-time.After(waitFor):
		t.Fatal("client did not try to reconnect")
	}
	admin = s.adminToken(t)
	queued := []string{s.sendCommand(t, admin, id, v1Command), s.sendCommand(t, admin, id, v1Command)}
	for _, q := range queued {
		var cmd command
		s.rest(t, "GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+id+"/commands/"+q, admin, "", &cmd)
		if cmd.CommandState != "SENDING" {
			t.Fatalf("queued command %s, want SENDING", cmd.CommandState)
		}
	}
	g.release()
	for _, q := range queued {
		if st := s.awaitCommandState(t, admin, id, q).CommandState; st != "DONE" {
			t.Fatalf("queued command ended %s", st)
		}
	}
	if n := rec.count(); n != 3 {
		t.Fatalf("handled %d commands, want 3", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.PutState(ctx, map[string]any{"after": "restart"}); err != nil {
		t.Fatalf("PutState after restart: %v", err)
	}
}

// TestConnectionCut cuts the client's connection, from its side and from
// the server's (a session takeover), with calls in flight.
func TestConnectionCut(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	admin := s.adminToken(t)
	rec := newRecorder(true)
	cfg := s.thingConfig(t, "vt-cut")
	cfg.OnCommand = rec.handle
	c := startClient(t, cfg)
	id := c.ThingID()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	cuts := []struct {
		name string
		cut  func(t *testing.T)
	}{
		{"client side", func(*testing.T) { thing.CutConnection(c) }},
		{"takeover", func(t *testing.T) {
			// Another connection with the thing's client ID makes the
			// broker drop the client's.
			ep := c.Credentials().Endpoint
			o := paho.NewClientOptions().AddBroker(s.url("tcp")[:len("tcp://127.0.0.1:")] + itoa(ep.PortTCP)).
				SetClientID(ep.MQTTTopic).SetUsername(ep.Username).SetPassword(ep.Password).
				SetAutoReconnect(false).SetConnectRetry(false)
			intruder := paho.NewClient(o)
			if tok := intruder.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
				t.Fatalf("intruder connect: %v", tok.Error())
			}
			intruder.Disconnect(0)
		}},
	}
	for _, cut := range cuts {
		t.Run(cut.name, func(t *testing.T) {
			var lost, ok atomic.Int32
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					err := c.PatchState(ctx, map[string]any{"n": 1})
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, thing.ErrConnectionLost):
						lost.Add(1)
					default:
						t.Errorf("PatchState: %v", err)
					}
				})
			}
			cut.cut(t)
			wg.Wait()
			t.Logf("calls across the cut: %d answered, %d lost", ok.Load(), lost.Load())
			awaitConnection(t, c)
			cid := s.sendCommand(t, admin, id, v1Command)
			if st := s.awaitCommandState(t, admin, id, cid).CommandState; st != "DONE" {
				t.Fatalf("command after the cut ended %s", st)
			}
		})
	}
}

// TestEndpointExpired expires the client's endpoint on the server: the
// next CONNECT is refused and the client onboards again, keeping the new
// endpoint.
func TestEndpointExpired(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	admin := s.adminToken(t)
	st := &thing.FileStore{Path: filepath.Join(t.TempDir(), "thing.json")}
	cfg := s.thingConfig(t, "vt-expire")
	cfg.Store = st
	cfg.OnCommand = newRecorder(true).handle
	c := startClient(t, cfg)
	first := c.Credentials()

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	in, err := s.Store().Installation(ctx, testAppID, first.Endpoint.InstallationID)
	if err != nil {
		t.Fatal(err)
	}
	in.ExpiresAt = time.Now().Add(-time.Minute)
	if err := s.Store().PutInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	thing.CutConnection(c) // the open connection stays up until it ends

	deadline := time.Now().Add(waitFor)
	for c.Credentials().Endpoint.InstallationID == first.Endpoint.InstallationID {
		if time.Now().After(deadline) {
			t.Fatal("client did not onboard again")
		}
		time.Sleep(10 * time.Millisecond)
	}
	awaitConnection(t, c)
	now := c.Credentials()
	if now.ThingID != first.ThingID {
		t.Fatalf("thing changed: %s, was %s", now.ThingID, first.ThingID)
	}
	saved, err := st.Load(ctx)
	if err != nil || saved.Endpoint != now.Endpoint {
		t.Fatalf("stored endpoint %+v (%v), want the new one", saved, err)
	}
	cid := s.sendCommand(t, admin, now.ThingID, v1Command)
	if st := s.awaitCommandState(t, admin, now.ThingID, cid).CommandState; st != "DONE" {
		t.Fatalf("command with the new endpoint ended %s", st)
	}
}

// TestAnswerNeverComes: a call whose answer is lost fails at its deadline,
// and the client goes on working.
func TestAnswerNeverComes(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	c := startClient(t, s.thingConfig(t, "vt-noanswer"))

	thing.DropAnswers(c, true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.PutState(ctx, map[string]any{"lost": true}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PutState without an answer: %v, want DeadlineExceeded", err)
	}
	thing.DropAnswers(c, false)
	ctx2, cancel2 := context.WithTimeout(context.Background(), waitFor)
	defer cancel2()
	if err := c.PutState(ctx2, map[string]any{"lost": false}); err != nil {
		t.Fatalf("PutState afterwards: %v", err)
	}

	t.Run("server stopped", func(t *testing.T) {
		s.stop(t)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := c.PutState(ctx, map[string]any{"x": 1})
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, thing.ErrConnectionLost) {
			t.Fatalf("PutState with the server stopped: %v", err)
		}
	})
}

// TestDuplicatePush hands the client a command it already handled, and the
// same new command twice: each is handled once.
func TestDuplicatePush(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	admin := s.adminToken(t)
	rec := newRecorder(true)
	cfg := s.thingConfig(t, "vt-dup")
	cfg.OnCommand = rec.handle
	c := startClient(t, cfg)
	id := c.ThingID()
	cid := s.sendCommand(t, admin, id, v1Command)
	first := rec.await(t)
	s.awaitCommandState(t, admin, id, cid)

	thing.InjectPush(c, first.Raw) // the server pushing it again
	fresh := []byte(`{"schema":"S","schemaVersion":1,"commandID":"injected-1","actions":[{"a":{}}]}`)
	thing.InjectPush(c, fresh)
	thing.InjectPush(c, fresh)
	// A real command after them shows that the queue has been worked
	// through: commands are handled in order.
	cid2 := s.sendCommand(t, admin, id, v1Command)
	var got []string
	for {
		cmd := rec.await(t)
		got = append(got, cmd.ID)
		if cmd.ID == cid2 {
			break
		}
	}
	if len(got) != 2 || got[0] != "injected-1" {
		t.Fatalf("handled %v after the first, want [injected-1 %s]", got, cid2)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestBrokerUnreachable: stored credentials name an API broker nobody
// listens on any more (its node died): after ReonboardAfter of refused
// connections the client onboards again and works with the broker the
// new answer names.
func TestBrokerUnreachable(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	admin := s.adminToken(t)
	st := new(thing.MemoryStore)
	cfg := s.thingConfig(t, "vt-unreachable")
	cfg.Store = st
	cfg.OnCommand = newRecorder(true).handle
	c := startClient(t, cfg)
	first := c.Credentials()
	disconnect(t, c)

	// A port that refuses connections, as a dead node's does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	stale := *first
	stale.Endpoint.PortTCP = dead
	if err := st.Save(t.Context(), &stale); err != nil {
		t.Fatal(err)
	}
	cfg.ReonboardAfter = 300 * time.Millisecond
	c = startClient(t, cfg)
	awaitConnection(t, c)
	now := c.Credentials()
	if now.Endpoint.PortTCP == dead || now.ThingID != first.ThingID {
		t.Fatalf("credentials after the dead broker: %+v, first %+v", now, first)
	}
	cid := s.sendCommand(t, admin, now.ThingID, v1Command)
	if st := s.awaitCommandState(t, admin, now.ThingID, cid).CommandState; st != "DONE" {
		t.Fatalf("command after onboarding again ended %s", st)
	}
}
