// Package codec reads and writes the HTTP-like messages that thing-if carries
// inside MQTT PUBLISH payloads, and maps thing-if request topics to REST paths.
//
// A request payload is the method alone on the first line (the path is in the
// topic), header lines, an empty line and the body:
//
//	PUT
//	Authorization: Bearer tok
//	Content-Type: application/json
//
//	{"power":true}
//
// A response payload has the three-digit status code alone on the first line:
//
//	200
//	Content-Type: application/json
//	X-Kii-RequestID: r1
//
//	{"ok":true}
//
// Parsers are liberal, because devices in the field are: LF or CRLF line ends
// (also mixed), header names in any case, "Name:value" with or without spaces,
// leading blank lines. There is no Content-Length framing: the body is the
// rest of the payload, byte for byte. Encoders are exact: CRLF line ends,
// headers in their conventional spelling (see HeaderSpelling) sorted by name.
//
// A server turns a PUBLISH into an *http.Request and back:
//
//	t, err := codec.ParseTopic(topic)
//	if err != nil { ... }
//	r, err := codec.NewHTTPRequest(ctx, t, payload, codec.Limits{})
//	if err != nil { ... }
//	w := codec.NewResponseWriter()
//	handler.ServeHTTP(w, r)
//	publish(t.String(), w.Bytes())
//
// A device builds a request with AppendRequest and reads the answer with
// ParseResponse.
package codec

import "errors"

// Errors returned by the parsers, wrapped with context; test them with
// errors.Is.
var (
	// ErrEmpty means the payload holds no first line at all.
	ErrEmpty = errors.New("empty payload")
	// ErrMethod means the first line of a request is not a bare HTTP method
	// token (a request line with a path and version is rejected too: the
	// path belongs in the topic).
	ErrMethod = errors.New("invalid method line")
	// ErrHeader means a header line has no colon, a name that is not an
	// HTTP token, or a value with NUL or CR.
	ErrHeader = errors.New("invalid header line")
	// ErrTooManyHeaders means the payload has more header lines than
	// Limits.MaxHeaders.
	ErrTooManyHeaders = errors.New("too many headers")
	// ErrHeaderTooLarge means the first line and header lines together take
	// more than Limits.MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("header block too large")
	// ErrStatus means the first line of a response is not a status code
	// of three digits in 100–599.
	ErrStatus = errors.New("invalid status line")
	// ErrTopic means a topic is not a thing-if request topic
	// p/{ClientID}/thing-if/apps/{AppID}/{Rest}.
	ErrTopic = errors.New("invalid thing-if topic")
)
