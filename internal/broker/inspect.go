package broker

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/thingif/thingif/internal/endpoint"
)

// The inspector tap: the hooks of both brokers describe each packet of
// interest to a Tap, which hands the description to the watchers whose
// filter it matches (the web console's live protocol inspector). A Tap with
// no watcher costs one atomic load per call site: the hooks call
// `if tap.on() { tap.x(...) }`, and on is inlined. Descriptions never carry
// a credential: no CONNECT password or username, no header, and bodies
// pass through redactJSON, which replaces every member whose name names a
// credential.

// Broker names in Event.Broker and Filter.Broker.
const (
	TapAPI        = "api"
	TapOnboarding = "onboarding"
)

// Event kinds.
const (
	EventConnect    = "CONNECT"
	EventConnack    = "CONNACK"
	EventSubscribe  = "SUBSCRIBE"
	EventRequest    = "REQUEST"
	EventPush       = "PUSH"
	EventPuback     = "PUBACK"
	EventDisconnect = "DISCONNECT"
)

// maxTapBody bounds the body bytes an event carries.
const maxTapBody = 4 << 10

// Event is one thing an MQTT client did or was sent, as the inspector shows
// it. A REQUEST event is a request PUBLISH together with its answer.
type Event struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Broker   string    `json:"broker"`
	AppID    string    `json:"appID,omitempty"`
	ThingID  string    `json:"thingID,omitempty"`
	Client   string    `json:"client"`
	Remote   string    `json:"remote,omitempty"`
	Kind     string    `json:"kind"`
	Topic    string    `json:"topic,omitempty"`
	PacketID uint16    `json:"packetID,omitempty"`
	QoS      byte      `json:"qos"`
	// Method, Path and Status are a REQUEST's; Duration is the time the
	// handler took, in milliseconds.
	Method   string  `json:"method,omitempty"`
	Path     string  `json:"path,omitempty"`
	Status   int     `json:"status,omitempty"`
	Duration float64 `json:"durationMs,omitempty"`
	// Detail is a short human note: the MQTT version, granted QoS, a
	// refusal or disconnect reason, a command ID.
	Detail string `json:"detail,omitempty"`
	// Body and Answer are the request (or push) and answer bodies, JSON
	// with credentials replaced by "[redacted]", cut at 4 KiB.
	Body   string `json:"body,omitempty"`
	Answer string `json:"answer,omitempty"`
}

// Filter selects events. Broker and AppID must match; an empty ThingID
// matches every thing of the app (and the onboarding broker's events,
// which have none).
type Filter struct {
	Broker, AppID, ThingID string
}

func (f Filter) match(e *Event) bool {
	return f.Broker == e.Broker && f.AppID == e.AppID && (f.ThingID == "" || f.ThingID == e.ThingID)
}

// Tap fans events out to watchers. The zero value is not usable; a nil
// *Tap is, and never has watchers.
type Tap struct {
	watching atomic.Int32
	mu       sync.Mutex
	watchers map[*Watcher]struct{}
	seq      uint64
	now      func() time.Time
}

// NewTap returns a Tap with no watchers.
func NewTap() *Tap {
	return &Tap{watchers: make(map[*Watcher]struct{}), now: time.Now}
}

// Watcher receives the events of one filter, through a bounded buffer: an
// event that finds the buffer full is dropped and counted, so that a slow
// browser never holds up a broker.
type Watcher struct {
	t       *Tap
	f       Filter
	c       chan Event
	dropped atomic.Uint64
	closed  bool // guarded by t.mu
}

// Watch starts a watcher with room for buffer events (at least 1). Close
// it when done.
func (t *Tap) Watch(f Filter, buffer int) *Watcher {
	w := &Watcher{t: t, f: f, c: make(chan Event, max(buffer, 1))}
	t.mu.Lock()
	t.watchers[w] = struct{}{}
	t.watching.Store(int32(len(t.watchers)))
	t.mu.Unlock()
	return w
}

// Events is the watcher's channel; it is closed by Close.
func (w *Watcher) Events() <-chan Event { return w.c }

// Dropped is the number of events lost to a full buffer.
func (w *Watcher) Dropped() uint64 { return w.dropped.Load() }

// Close stops the watcher and closes its channel. It may be called twice.
func (w *Watcher) Close() {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	delete(w.t.watchers, w)
	w.t.watching.Store(int32(len(w.t.watchers)))
	close(w.c)
}

// Watchers is the number of open watchers.
func (t *Tap) Watchers() int {
	if t == nil {
		return 0
	}
	return int(t.watching.Load())
}

// on reports whether anyone watches: the one check on the hooks' path.
func (t *Tap) on() bool { return t != nil && t.watching.Load() > 0 }

// publish stamps e and offers it to every matching watcher.
func (t *Tap) publish(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	e.Seq = t.seq
	if e.Time.IsZero() {
		e.Time = t.now()
	}
	for w := range t.watchers {
		if !w.f.match(&e) {
			continue
		}
		select {
		case w.c <- e:
		default:
			w.dropped.Add(1)
		}
	}
}

// clientEvent fills the fields every event of a connection has.
func clientEvent(broker, appID, thingID string, cl *endpoint.Conn, kind string) Event {
	return Event{Broker: broker, AppID: appID, ThingID: thingID, Client: cl.ID(), Remote: cl.Remote(), Kind: kind}
}

// connect describes a CONNECT and the broker's CONNACK: err is what the
// hook's OnConnect returned (nil: accepted).
func (t *Tap) connect(broker, appID, thingID string, cl *endpoint.Conn, pk packets.Packet, err error) {
	e := clientEvent(broker, appID, thingID, cl, EventConnect)
	e.Detail = "MQTT " + protocolName(pk.ProtocolVersion) + " client ID " + pk.Connect.ClientIdentifier
	if pk.Connect.Keepalive > 0 {
		e.Detail += ", keep-alive " + (time.Duration(pk.Connect.Keepalive) * time.Second).String()
	}
	t.publish(e)
	e = clientEvent(broker, appID, thingID, cl, EventConnack)
	if err != nil {
		e.Detail = "refused: " + err.Error()
	} else {
		e.Detail = "accepted"
	}
	t.publish(e)
}

func protocolName(v byte) string {
	switch v {
	case 3:
		return "3.1"
	case 4:
		return "3.1.1"
	case 5:
		return "5"
	}
	return "version " + strconv.Itoa(int(v))
}

// subscribe describes a SUBSCRIBE and the codes granted.
func (t *Tap) subscribe(broker, appID, thingID string, cl *endpoint.Conn, pk packets.Packet, codes []byte) {
	e := clientEvent(broker, appID, thingID, cl, EventSubscribe)
	e.PacketID = pk.PacketID
	var parts []string
	for i, f := range pk.Filters {
		part := f.Filter + " qos " + strconv.Itoa(int(f.Qos))
		if i < len(codes) {
			if codes[i] <= 2 {
				part += " granted " + strconv.Itoa(int(codes[i]))
			} else {
				part += " refused"
			}
		}
		parts = append(parts, part)
	}
	if len(pk.Filters) > 0 {
		e.Topic = pk.Filters[0].Filter
	}
	e.Detail = strings.Join(parts, "; ")
	t.publish(e)
}

// request describes a request PUBLISH and its answer.
func (t *Tap) request(e Event) { t.publish(e) }

// push describes a command written to a thing.
func (t *Tap) push(appID, thingID string, cl *endpoint.Conn, pk packets.Packet, commandID string, err error) {
	e := clientEvent(TapAPI, appID, thingID, cl, EventPush)
	e.Topic, e.PacketID, e.QoS = pk.TopicName, pk.PacketID, pk.FixedHeader.Qos
	e.Detail = "command " + commandID
	if err != nil {
		e.Detail += ": write failed: " + err.Error()
	}
	e.Body = redactBody(pk.Payload)
	t.publish(e)
}

// puback describes a thing's PUBACK.
func (t *Tap) puback(appID, thingID string, cl *endpoint.Conn, pk packets.Packet) {
	e := clientEvent(TapAPI, appID, thingID, cl, EventPuback)
	e.PacketID = pk.PacketID
	t.publish(e)
}

// disconnect describes a connection's end and why.
func (t *Tap) disconnect(broker, appID, thingID string, cl *endpoint.Conn, err error) {
	e := clientEvent(broker, appID, thingID, cl, EventDisconnect)
	if err != nil {
		e.Detail = err.Error()
	} else {
		e.Detail = "closed"
	}
	t.publish(e)
}

// tapRequest records what the inspector shows of one request: its body as
// the handler reads it and its answer as the handler writes it. It is made
// only while someone watches.
type tapRequest struct {
	start time.Time
	body  limitedBuffer
	w     *tapWriter
}

// startRequest wraps the request body and response writer of one request.
func startRequest(req *http.Request, w http.ResponseWriter) (*tapRequest, http.ResponseWriter) {
	tr := &tapRequest{start: time.Now()}
	if req != nil && req.Body != nil {
		// The head is read now, whether or not the handler reads it; the
		// handler reads it again, then the rest.
		head, _ := io.ReadAll(io.LimitReader(req.Body, maxTapBody+1))
		tr.body.Write(head)
		req.Body = readCloser{io.MultiReader(bytes.NewReader(head), req.Body), req.Body}
	}
	tr.w = &tapWriter{ResponseWriter: w}
	return tr, tr.w
}

// event completes the REQUEST event of cl's request PUBLISH pk.
func (tr *tapRequest) event(broker, appID, thingID string, cl *endpoint.Conn, pk packets.Packet, req *http.Request, status int) Event {
	e := clientEvent(broker, appID, thingID, cl, EventRequest)
	e.Topic, e.PacketID, e.QoS = pk.TopicName, pk.PacketID, pk.FixedHeader.Qos
	e.Duration = float64(time.Since(tr.start).Microseconds()) / 1000
	e.Status = status
	if req != nil {
		e.Method, e.Path = req.Method, req.URL.Path
	} else {
		e.Detail = "malformed request"
	}
	e.Body = redactBody(tr.body.b.Bytes())
	e.Answer = redactBody(tr.w.body.b.Bytes())
	return e
}

type readCloser struct {
	io.Reader
	io.Closer
}

// tapWriter keeps the first bytes of an answer body.
type tapWriter struct {
	http.ResponseWriter
	body limitedBuffer
}

func (w *tapWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.body.Write(b[:n])
	return n, err
}

// limitedBuffer keeps the first maxTapBody+1 bytes written to it (one more
// than kept, to know that it was cut).
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxTapBody + 1 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// redacted replaces a credential.
const redacted = "[redacted]"

// inspectorSecrets are the parts of JSON member names whose values the
// inspector never shows: the names of credentials, plus the endpoint
// username (half of an API broker login).
var inspectorSecrets = []string{"username", "pass", "secret", "token", "key", "auth", "payload", "credential"}

// redactBody returns a body for the inspector: JSON with every member whose
// name names a credential replaced by "[redacted]", cut at maxTapBody; a
// body that is not JSON is shown only by its size, since it could hold
// anything.
func redactBody(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if len(b) > maxTapBody || d.Decode(&v) != nil {
		if len(b) > maxTapBody {
			return "[" + strconv.Itoa(len(b)) + "+ bytes, not shown]"
		}
		return "[" + strconv.Itoa(len(b)) + " bytes, not JSON]"
	}
	out, err := json.Marshal(redactJSON(v))
	if err != nil {
		return "[" + strconv.Itoa(len(b)) + " bytes]"
	}
	return string(out)
}

// redactJSON replaces, at any depth, the values of members whose names
// name a credential.
func redactJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if secretName(k) {
				v[k] = redacted
				continue
			}
			v[k] = redactJSON(x)
		}
	case []any:
		for i, x := range v {
			v[i] = redactJSON(x)
		}
	}
	return v
}

func secretName(k string) bool {
	k = strings.ToLower(k)
	for _, s := range inspectorSecrets {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
