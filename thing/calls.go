package thing

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/thingif/thingif/codec"
)

// headerRequestID is the header that matches answers to requests.
const headerRequestID = "X-Kii-RequestID"

// Response is an answer of the server to an API call.
type Response struct {
	// StatusCode is the HTTP-like status, such as 200 or 204.
	StatusCode int
	// Header holds the answer's headers.
	Header http.Header
	// Body is the answer's body, or nil.
	Body []byte
}

// Error is a non-2xx answer of the server: the status and, for thing-if
// error bodies ({"errorCode":…,"message":…}), the errorCode and message.
type Error struct {
	// StatusCode is the HTTP-like status, such as 403.
	StatusCode int
	// ErrorCode is the thing-if error code, such as "WRONG_PASSWORD", or ""
	// when the body is not a thing-if error.
	ErrorCode string
	// Message is the server's explanation, if any.
	Message string
	// Body is the whole answer body.
	Body []byte
}

func (e *Error) Error() string {
	switch {
	case e.ErrorCode != "" && e.Message != "":
		return fmt.Sprintf("thing-if error %d %s: %s", e.StatusCode, e.ErrorCode, e.Message)
	case e.ErrorCode != "":
		return fmt.Sprintf("thing-if error %d %s", e.StatusCode, e.ErrorCode)
	default:
		return fmt.Sprintf("thing-if error %d", e.StatusCode)
	}
}

// errorFrom returns an *Error for a non-2xx response, or nil.
func errorFrom(r *Response) error {
	if r.StatusCode >= 200 && r.StatusCode <= 299 {
		return nil
	}
	e := &Error{StatusCode: r.StatusCode, Body: r.Body}
	var body struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(r.Body, &body) == nil {
		e.ErrorCode, e.Message = body.ErrorCode, body.Message
	}
	return e
}

// newRequestID returns a random request ID.
func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// waiter is one call waiting for its answer. ch receives the answer, or is
// closed without one when the connection the request went out on is lost.
type waiter struct {
	ch   chan *Response
	conn uint64
}

// calls matches answers to the calls waiting for them.
type calls struct {
	mu sync.Mutex
	m  map[string]*waiter
}

// add registers a call sent on connection conn.
func (cs *calls) add(id string, conn uint64) *waiter {
	w := &waiter{ch: make(chan *Response, 1), conn: conn}
	cs.mu.Lock()
	if cs.m == nil {
		cs.m = make(map[string]*waiter)
	}
	cs.m[id] = w
	cs.mu.Unlock()
	return w
}

// remove forgets a call.
func (cs *calls) remove(id string) {
	cs.mu.Lock()
	delete(cs.m, id)
	cs.mu.Unlock()
}

// deliver hands an answer payload to the call it names by X-Kii-RequestID,
// or by MQTT 5 correlation data when the answer has no such header. It
// reports whether a call took it.
func (cs *calls) deliver(payload, correlation []byte) bool {
	res, err := codec.ParseResponse(payload)
	if err != nil {
		return false
	}
	id := res.Header.Get(headerRequestID)
	if id == "" {
		id = string(correlation)
	}
	cs.mu.Lock()
	w, ok := cs.m[id]
	delete(cs.m, id)
	cs.mu.Unlock()
	if !ok {
		return false
	}
	w.ch <- &Response{StatusCode: res.StatusCode, Header: res.Header, Body: res.Body}
	return true
}

// lose ends every call sent on connection conn without an answer.
func (cs *calls) lose(conn uint64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for id, w := range cs.m {
		if w.conn == conn {
			delete(cs.m, id)
			close(w.ch)
		}
	}
}

// requestPayload encodes a request with its request ID and, when token is
// set, a Bearer token.
func requestPayload(method, id, token string, header http.Header, body []byte) []byte {
	h := make(http.Header, len(header)+2)
	for k, v := range header {
		h[k] = v
	}
	h.Set(headerRequestID, id)
	if token != "" && h.Get("Authorization") == "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return codec.AppendRequest(nil, strings.ToUpper(method), h, body)
}
