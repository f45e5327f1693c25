package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// revokingStore deletes the installation and tells the broker, as a prune
// by a concurrent onboarding would, right after the first CONNECT's lookup
// read it: between that read and the connection being tracked.
type revokingStore struct {
	store.Store
	f    *fixture
	once sync.Once
}

func (s *revokingStore) InstallationByUsername(ctx context.Context, username string) (store.Installation, error) {
	in, err := s.Store.InstallationByUsername(ctx, username)
	s.once.Do(func() {
		if err := s.Store.DeleteInstallation(ctx, in.ID); err != nil {
			panic(err)
		}
		s.f.api.EndInstallation(ctx, in.ThingID, in.ID)
	})
	return in, err
}

// TestConnectRacingRevocation: an installation deleted while a CONNECT
// with it is being checked does not leave that connection up: the CONNECT
// is refused.
func TestConnectRacingRevocation(t *testing.T) {
	var rs *revokingStore
	f := newFixtureStore(t, Config{}, func(s store.Store) store.Store {
		rs = &revokingStore{Store: s}
		return rs
	})
	rs.f = f
	_, code := rawConnect(t, f.tcp.Addr().String(), f.inst.MQTTTopic, f.inst.Username, f.password)
	if got, want := code, byte(0x04); got != want {
		t.Fatalf("CONNACK 0x%02x, want 0x%02x (bad credentials)", got, want)
	}
	if n := f.api.logins.len(); n != 0 {
		t.Fatalf("%d connections tracked after a refused CONNECT", n)
	}
}

// TestEndInstallationOfAnotherThing: EndInstallation names the thing too;
// an installation ID with another thing's ID ends nothing.
func TestEndInstallationOfAnotherThing(t *testing.T) {
	f := newFixture(t, Config{})
	conn, code := rawConnect(t, f.tcp.Addr().String(), f.inst.MQTTTopic, f.inst.Username, f.password)
	if code != 0 {
		t.Fatalf("CONNACK 0x%02x", code)
	}
	f.api.EndInstallation(context.Background(), "th.other", f.inst.ID)
	if n := f.api.logins.len(); n != 1 {
		t.Fatalf("%d connections tracked after EndInstallation of another thing, want 1", n)
	}
	f.api.EndInstallation(context.Background(), f.thing.ID, f.inst.ID)
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	if n, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after EndInstallation: read %d bytes, %v; want EOF (MQTT 3.1.1: closed without DISCONNECT)", n, err)
	}
}

// TestLoginsForgetEndedConnections: connections that end leave nothing in
// the expiry heap and the installation index, whatever their ttl; a
// session taken over by a reconnect with the same client ID is forgotten
// too.
func TestLoginsForgetEndedConnections(t *testing.T) {
	f := newFixture(t, Config{})
	for i := range 10 {
		conn, code := rawConnect(t, f.tcp.Addr().String(), f.inst.MQTTTopic, f.inst.Username, f.password)
		if code != 0 {
			t.Fatalf("CONNACK %d: 0x%02x", i, code)
		}
		if i%2 == 0 {
			conn.Close() // odd ones are taken over by the next CONNECT
		}
	}
	// One connection is left, the last one.
	deadline := time.Now().Add(waitFor)
	for f.api.logins.len() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked, want 1", f.api.logins.len())
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.api.logins.mu.Lock()
	defer f.api.logins.mu.Unlock()
	if got, want := len(f.api.logins.byInst[f.inst.ID]), 1; got != want {
		t.Fatalf("%d connections of the installation indexed, want %d", got, want)
	}
}

// TestLoginsExpiryOrder: the expiry loop ends connections in expiry order,
// each once, and a connection untracked before its expiry never.
func TestLoginsExpiryOrder(t *testing.T) {
	l := newLogins()
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var sessions []*apiSession
	for i, sec := range []int{5, 1, 4, 2, 3} {
		s := &apiSession{thingID: "th", installationID: fmt.Sprint("in", i), expires: time.Unix(1000+int64(sec), 0), heapIndex: -1}
		sessions = append(sessions, s)
		l.track(s)
	}
	l.untrack(sessions[2]) // expires at 4: never ends
	ended := make(chan string, 10)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(stop, clock, func(s *apiSession) { ended <- s.installationID })
	}()
	mu.Lock()
	now = time.Unix(1010, 0)
	mu.Unlock()
	l.wake <- struct{}{}
	var got []string
	for range 4 {
		select {
		case id := <-ended:
			got = append(got, id)
		case <-time.After(waitFor):
			t.Fatalf("ended %v, want 4", got)
		}
	}
	close(stop)
	<-done
	if want := []string{"in1", "in3", "in4", "in0"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ended %v, want %v", got, want)
	}
	if n := l.len(); n != 0 {
		t.Fatalf("%d left in the heap", n)
	}
	if len(l.byInst) != 0 {
		t.Fatalf("index left: %v", l.byInst)
	}
}

// BenchmarkLoginsTrack measures what tracking costs an accepted
// connection (the heap slot and the installation index; the session's own
// three fields come on top), in B/op.
func BenchmarkLoginsTrack(b *testing.B) {
	l := newLogins()
	far := time.Now().Add(68 * 365 * 24 * time.Hour)
	ss := make([]*apiSession, b.N)
	for i := range ss {
		ss[i] = &apiSession{installationID: fmt.Sprintf("%032x", i), expires: far.Add(time.Duration(i)), heapIndex: -1}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, s := range ss {
		l.track(s)
	}
}
