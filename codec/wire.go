package codec

import (
	"bytes"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// Default limits, used for zero fields of Limits.
const (
	// DefaultMaxHeaders is the default Limits.MaxHeaders.
	DefaultMaxHeaders = 64
	// DefaultMaxHeaderBytes is the default Limits.MaxHeaderBytes (16 KiB).
	DefaultMaxHeaderBytes = 16 << 10
)

// Limits bound what the parsers accept, so that a hostile payload costs
// little to reject. A zero or negative field takes its default.
type Limits struct {
	// MaxHeaders is the largest number of header lines. If zero,
	// DefaultMaxHeaders (64).
	MaxHeaders int
	// MaxHeaderBytes bounds the bytes before the empty line that ends the
	// header block: leading blank lines, the first line and every header
	// line, line ends included. If there is no empty line the whole payload
	// counts. If zero, DefaultMaxHeaderBytes (16 KiB).
	MaxHeaderBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// Request is an HTTP-like request carried in an MQTT payload.
type Request struct {
	// Method is the request method, upper-cased.
	Method string
	// Header holds the header lines, keys canonicalized with
	// textproto.CanonicalMIMEHeaderKey, repeated lines in payload order.
	// It is never nil.
	Header http.Header
	// Body is everything after the first empty line, byte for byte, or nil
	// if that is nothing. It does not share memory with the payload.
	Body []byte
}

// Response is an HTTP-like response carried in an MQTT payload.
type Response struct {
	// StatusCode is the three-digit status, 100–599.
	StatusCode int
	// Header holds the header lines as in Request.Header. It is never nil.
	Header http.Header
	// Body is as in Request.Body.
	Body []byte
}

// ParseRequest parses a request payload with the default Limits. See
// ParseRequestLimits.
func ParseRequest(payload []byte) (*Request, error) {
	return ParseRequestLimits(payload, Limits{})
}

// ParseRequestLimits parses a request payload: the method alone on the first
// line, header lines, an empty line, the body.
//
// Line ends may be CRLF or LF, mixed. Blank lines before the method are
// skipped; spaces and tabs around it are ignored, but a line with anything else
// after the method (such as "GET /path HTTP/1.1") is ErrMethod: the path is
// in the topic. Header names may be in any case; values are trimmed of
// spaces and tabs. The body is the rest of the payload after the first empty
// line; a Content-Length header, if present, is kept in Header but plays no
// part in framing, as no thing-if client sends one. Without an empty line
// there is no body.
func ParseRequestLimits(payload []byte, l Limits) (*Request, error) {
	first, h, body, err := parse(payload, l)
	if err != nil {
		return nil, fmt.Errorf("parse request: %w", err)
	}
	if first == "" || strings.ContainsAny(first, " \t") {
		return nil, fmt.Errorf("parse request: %.40q: %w", first, ErrMethod)
	}
	if !isToken(first) {
		return nil, fmt.Errorf("parse request: method %.40q: %w", first, ErrMethod)
	}
	return &Request{Method: upper(first), Header: h, Body: body}, nil
}

// ParseResponse parses a response payload with the default Limits. See
// ParseResponseLimits.
func ParseResponse(payload []byte) (*Response, error) {
	return ParseResponseLimits(payload, Limits{})
}

// ParseResponseLimits parses a response payload: the status code alone on the
// first line, header lines, an empty line, the body. It is as liberal as
// ParseRequestLimits about line ends, case and white space. The status must
// be three digits in 100–599.
func ParseResponseLimits(payload []byte, l Limits) (*Response, error) {
	first, h, body, err := parse(payload, l)
	if err != nil {
		return nil, fmt.Errorf("parse response: %w", err)
	}
	code := 0
	if len(first) == 3 {
		for i := range 3 {
			c := first[i]
			if c < '0' || c > '9' {
				code = 0
				break
			}
			code = code*10 + int(c-'0')
		}
	}
	if code < 100 || code > 599 {
		return nil, fmt.Errorf("parse response: %.40q: %w", first, ErrStatus)
	}
	return &Response{StatusCode: code, Header: h, Body: body}, nil
}

// parse splits a payload into its first line (trailing spaces and tabs
// removed), header and body, enforcing l.
func parse(payload []byte, l Limits) (first string, h http.Header, body []byte, err error) {
	l = l.withDefaults()
	maxBytes := l.MaxHeaderBytes

	// Pass 1 finds the header block and counts its lines without copying.
	// Every line that counts ends within maxBytes, and the newline of the
	// empty line after it within maxBytes+2, so the search never looks
	// further than that.
	win := payload
	if len(win) > maxBytes+2 {
		win = win[:maxBytes+2]
	}
	var (
		start     = -1 // offset of the first line
		end       int  // offset after the last header line
		bodyStart = -1 // offset of the body, or -1 without an empty line
		n         int  // header lines
	)
	for pos := 0; ; {
		if pos == len(payload) {
			end = pos
			break
		}
		next := len(payload)
		lineEnd := next
		if i := bytes.IndexByte(win[pos:], '\n'); i >= 0 {
			lineEnd = pos + i
			next = lineEnd + 1
		} else if len(win) < len(payload) {
			return "", nil, nil, ErrHeaderTooLarge
		}
		empty := lineEnd == pos || lineEnd == pos+1 && payload[pos] == '\r'
		switch {
		case empty && start >= 0:
			end, bodyStart = pos, next
		case next > maxBytes:
			return "", nil, nil, ErrHeaderTooLarge
		case empty:
			// A blank line before the first line.
		case start < 0:
			start = pos
		default:
			n++
			if n > l.MaxHeaders {
				return "", nil, nil, fmt.Errorf("more than %d: %w", l.MaxHeaders, ErrTooManyHeaders)
			}
		}
		if bodyStart >= 0 {
			break
		}
		pos = next
	}
	if start < 0 {
		return "", nil, nil, ErrEmpty
	}

	// Pass 2 copies the header block into one string and slices the
	// method, names and values out of it: one allocation for all of them.
	s := string(payload[start:end])
	first, s = cutLine(s)
	first = trimSpace(first)
	h = make(http.Header, n)
	strs := make([]string, n) // backing for single-valued keys
	for i := 1; s != ""; i++ {
		var line string
		line, s = cutLine(s)
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return "", nil, nil, fmt.Errorf("header line %d: no colon: %w", i, ErrHeader)
		}
		if !isToken(name) {
			return "", nil, nil, fmt.Errorf("header line %d: name %.40q: %w", i, name, ErrHeader)
		}
		value = trimSpace(value)
		if strings.ContainsAny(value, "\x00\r") {
			return "", nil, nil, fmt.Errorf("header line %d: %s: control character in value: %w", i, name, ErrHeader)
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		if vv, ok := h[key]; ok {
			h[key] = append(vv, value)
			continue
		}
		strs[0] = value
		h[key] = strs[:1:1]
		strs = strs[1:]
	}
	if bodyStart >= 0 && bodyStart < len(payload) {
		body = bytes.Clone(payload[bodyStart:])
	}
	return first, h, body, nil
}

// cutLine returns the first line of s without its LF or CRLF, and the rest.
func cutLine(s string) (line, rest string) {
	line, rest, _ = strings.Cut(s, "\n")
	line = strings.TrimSuffix(line, "\r")
	return line, rest
}

// upper returns the ASCII upper case of a token, allocating only if it has
// lower-case letters.
func upper(s string) string {
	for i := range len(s) {
		if 'a' <= s[i] && s[i] <= 'z' {
			return strings.ToUpper(s)
		}
	}
	return s
}

// AppendRequest appends a request payload in the exact form: the method
// upper-cased, header lines in their conventional spelling sorted by name
// (see HeaderSpelling), one line per value, an empty line and the body, all
// with CRLF line ends. The empty line is written even for an empty body.
//
// Header names that are not HTTP tokens are dropped; NUL, CR and LF in values
// become spaces, and values are trimmed of spaces and tabs, so that whatever
// h holds the payload parses back to the same request.
func AppendRequest(dst []byte, method string, h http.Header, body []byte) []byte {
	for i := range len(method) {
		c := method[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	dst = append(dst, '\r', '\n')
	dst = appendHeader(dst, h)
	dst = append(dst, '\r', '\n')
	return append(dst, body...)
}

// AppendResponse appends a response payload in the form clients expect: the
// three-digit status alone on the first line, then headers, an empty line
// and the body, as AppendRequest writes them. Clients split the payload at
// the first "\r\n\r\n" and test the first line ("200\r\n").
//
// A status outside 100–599 is written as 500, since no client could parse
// it.
func AppendResponse(dst []byte, status int, h http.Header, body []byte) []byte {
	if status < 100 || status > 599 {
		status = http.StatusInternalServerError
	}
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, '\r', '\n')
	dst = appendHeader(dst, h)
	dst = append(dst, '\r', '\n')
	return append(dst, body...)
}
