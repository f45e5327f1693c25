package codec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Host is the Host of every request NewHTTPRequest makes, so that handlers
// can tell MQTT requests from REST ones if they must.
const Host = "mqtt"

// NewHTTPRequest decodes payload, a request published on topic t, into a
// server-side *http.Request for the REST handler, as net/http's server would
// have built it had the request come over HTTP/1.1: the method from the
// payload; URL, RequestURI and path from t.Path() and t.RawQuery()
// (percent-encoding in the topic is decoded as in a request line); the
// payload's headers; Body reading the payload's body (http.NoBody if empty)
// with ContentLength its length; Proto HTTP/1.1; Host "mqtt"; context ctx.
//
// As net/http does, the Host header is dropped (Host is always "mqtt"), and
// so are Content-Length and Transfer-Encoding, which do not frame MQTT
// payloads and would only contradict ContentLength. RemoteAddr is left
// empty for the caller to fill in, with the MQTT client ID for example.
//
// Errors are the parse errors of ParseRequestLimits, or ErrTopic for a topic
// that ParseTopic would reject or whose path decodes to a "." or ".."
// segment.
func NewHTTPRequest(ctx context.Context, t Topic, payload []byte, l Limits) (*http.Request, error) {
	if ctx == nil {
		return nil, errors.New("codec: nil context")
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	uri := appsLevels + t.AppID + "/" + t.Rest
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("request URI %.80q: %w", uri, errors.Join(ErrTopic, err))
	}
	if strings.Contains(u.Path, "/.") && hasDotSegment(u.Path) {
		return nil, fmt.Errorf("request path %.80q: dot segment: %w", u.Path, ErrTopic)
	}
	req, err := ParseRequestLimits(payload, l)
	if err != nil {
		return nil, err
	}
	h := req.Header
	delete(h, "Host")
	delete(h, "Content-Length")
	delete(h, "Transfer-Encoding")
	var body io.ReadCloser = http.NoBody
	if len(req.Body) > 0 {
		body = io.NopCloser(bytes.NewReader(req.Body))
	}
	r := &http.Request{
		Method:        req.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: int64(len(req.Body)),
		Host:          Host,
		RequestURI:    uri,
	}
	return r.WithContext(ctx), nil
}

// ResponseWriter is an http.ResponseWriter that records a handler's answer
// for encoding as a response payload. Unlike net/http it adds no headers of
// its own (no Date, Content-Length or sniffed Content-Type: devices read
// answers into small buffers). As in net/http, the header is fixed when the
// status is written, the first status wins, 1xx statuses are ignored (MQTT
// has no interim answers), and a 204 or 304 answer refuses a body.
//
// The zero value is not ready for use; call NewResponseWriter. A
// ResponseWriter is not safe for concurrent use, which net/http does not
// promise either.
type ResponseWriter struct {
	header  http.Header
	written http.Header // header as of WriteHeader, nil before
	status  int
	body    bytes.Buffer
}

var _ http.ResponseWriter = (*ResponseWriter)(nil)

// NewResponseWriter returns an empty ResponseWriter.
func NewResponseWriter() *ResponseWriter {
	return &ResponseWriter{header: make(http.Header)}
}

// Header returns the header map that WriteHeader will send. Keys may be in
// any form; Bytes writes them in their conventional spelling, so
// Header().Set("X-Kii-RequestID", id) goes out as "X-Kii-RequestID".
func (w *ResponseWriter) Header() http.Header {
	return w.header
}

// WriteHeader records the status code and fixes the header. Calls after the
// first, and 1xx codes, are ignored; a code outside 100–599 is recorded as
// 500, where net/http would panic.
func (w *ResponseWriter) WriteHeader(status int) {
	if w.written != nil || status >= 100 && status <= 199 {
		return
	}
	if status < 100 || status > 599 {
		status = http.StatusInternalServerError // as AppendResponse would
	}
	w.status = status
	w.written = w.header.Clone()
}

// Write records body bytes, writing status 200 first if none was written.
// It returns http.ErrBodyNotAllowed if the status does not permit a body.
func (w *ResponseWriter) Write(b []byte) (int, error) {
	if w.written == nil {
		w.WriteHeader(http.StatusOK)
	}
	if w.status == http.StatusNoContent || w.status == http.StatusNotModified {
		return 0, http.ErrBodyNotAllowed
	}
	return w.body.Write(b)
}

// Status returns the status that Bytes encodes: the one written, or 200 if
// the handler wrote none.
func (w *ResponseWriter) Status() int {
	if w.written == nil {
		return http.StatusOK
	}
	return w.status
}

// Bytes encodes the recorded answer with AppendResponse. If the handler never
// wrote a status, it is 200 with the current header.
func (w *ResponseWriter) Bytes() []byte {
	h := w.written
	if h == nil {
		h = w.header
	}
	if _, ok := h["Content-Length"]; ok {
		// The body is the rest of the payload; devices with ~1 KiB
		// buffers are better off without a header that says so.
		h = h.Clone()
		delete(h, "Content-Length")
	}
	return AppendResponse(make([]byte, 0, 64+w.body.Len()), w.Status(), h, w.body.Bytes())
}
