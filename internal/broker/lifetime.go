package broker

import (
	"container/heap"
	"context"
	"math"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/internal/endpoint"
)

// Connection lifetime on the API broker.
//
// A connection lives as long as the credentials it logged in with. Two
// things end them: the endpoint's expiry (Installation.ExpiresAt, the ttl
// of the onboarding answer), and the installation being deleted or given a
// new password (httpapi calls API.EndInstallation after the store change).
// Either ends the connection: MQTT 5 clients get a DISCONNECT first, with
// 0xA0 "maximum connect time" on expiry and 0x87 "not authorized" when the
// credentials were replaced; MQTT 3 has no server DISCONNECT, so the
// connection is closed. A reconnect with the old credentials is refused at
// CONNECT, as before.
//
// One min-heap on expiry for the whole broker, not a timer per connection:
// an idle thing costs three session fields (40 bytes) and its places in
// the heap and the by-installation index (180-250 bytes allocated per
// connection with the slices' and map's growth, BenchmarkLoginsTrack at
// 200,000 and 1,000,000 connections), and one goroutine sleeps until the
// earliest expiry. Entries leave both when the connection
// ends, so the default ttl of 68 years holds no memory for connections
// long gone.

// Reason codes of the DISCONNECT that ends an MQTT 5 connection.
var (
	codeEndpointExpired     = packets.ErrMaxConnectTime
	codeCredentialsReplaced = packets.ErrNotAuthorized
)

// logins indexes the API broker's accepted connections by installation and
// by the expiry of the endpoint they logged in with.
type logins struct {
	mu     sync.Mutex
	byInst map[string][]*apiSession
	heap   expiryHeap
	// revoked counts the calls of take, for a CONNECT racing one.
	revoked uint64
	// wake tells run that the earliest expiry moved.
	wake chan struct{}
}

func newLogins() *logins {
	return &logins{byInst: make(map[string][]*apiSession), wake: make(chan struct{}, 1)}
}

// track adds an accepted connection.
func (l *logins) track(s *apiSession) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byInst[s.installationID] = append(l.byInst[s.installationID], s)
	heap.Push(&l.heap, s)
	if s.heapIndex == 0 {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// untrack removes a connection; removing one that is not tracked does
// nothing.
func (l *logins) untrack(s *apiSession) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.untrackLocked(s)
}

func (l *logins) untrackLocked(s *apiSession) {
	if s.heapIndex >= 0 {
		heap.Remove(&l.heap, s.heapIndex)
	}
	ss := l.byInst[s.installationID]
	for i, o := range ss {
		if o == s {
			ss = append(ss[:i], ss[i+1:]...)
			break
		}
	}
	if len(ss) == 0 {
		delete(l.byInst, s.installationID)
	} else {
		l.byInst[s.installationID] = ss
	}
}

// take removes and returns the connections of the thing's installation.
func (l *logins) take(thingID, installationID string) []*apiSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revoked++
	var out []*apiSession
	for _, s := range l.byInst[installationID] {
		if s.thingID == thingID {
			out = append(out, s)
		}
	}
	for _, s := range out {
		l.untrackLocked(s)
	}
	return out
}

// revocations returns the number of take calls so far.
func (l *logins) revocations() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.revoked
}

// len returns the number of tracked connections.
func (l *logins) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.heap)
}

// run calls expired, outside the lock, for each connection whose endpoint
// expired (removing it), until stop is closed.
func (l *logins) run(stop <-chan struct{}, now func() time.Time, expired func(*apiSession)) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		l.mu.Lock()
		n := now()
		var due []*apiSession
		for len(l.heap) > 0 && !n.Before(l.heap[0].expires) {
			s := l.heap[0]
			l.untrackLocked(s)
			due = append(due, s)
		}
		wait := time.Duration(math.MaxInt64)
		if len(l.heap) > 0 {
			wait = l.heap[0].expires.Sub(n)
		}
		l.mu.Unlock()
		for _, s := range due {
			expired(s)
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-l.wake:
		case <-stop:
			return
		}
	}
}

// expiryHeap is a container/heap of sessions, earliest expiry first; each
// session knows its index (heapIndex, -1 when out of the heap).
type expiryHeap []*apiSession

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *expiryHeap) Push(x any) {
	s := x.(*apiSession)
	s.heapIndex = len(*h)
	*h = append(*h, s)
}
func (h *expiryHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.heapIndex = -1
	return s
}

// EndInstallation implements httpapi.Revoker: it ends the connections that
// logged in with the installation, which was just deleted or given a new
// password. The thing's other installations' connections stay. It returns
// at once; the connections end in the background.
func (b *API) EndInstallation(_ context.Context, thingID, installationID string) {
	for _, s := range b.logins.take(thingID, installationID) {
		b.cfg.Logger.Info("credentials replaced; connection ended", "client", s.cl.ID(),
			"thing", s.thingID, "installation", s.installationID)
		b.end(s.cl, codeCredentialsReplaced)
	}
}

// expired ends a connection whose endpoint expired.
func (b *API) expired(s *apiSession) {
	if s.cl.Closed() {
		return // gone meanwhile
	}
	b.cfg.Logger.Info("endpoint expired; connection ended", "client", s.cl.ID(),
		"thing", s.thingID, "installation", s.installationID)
	b.end(s.cl, codeEndpointExpired)
}

// end ends a connection in the background: the DISCONNECT may wait for a
// client that does not read, up to a second. The connection's
// Disconnected then cleans up as for any other end.
func (b *API) end(cl *endpoint.Conn, code packets.Code) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return // Close disconnects everyone
	}
	b.wg.Go(func() { cl.Disconnect(code) })
}
