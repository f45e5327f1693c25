package codec

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// spellings maps lower-case header names to their conventional wire spelling
// where that differs from Go's canonical form. Devices search answers
// case-sensitively for some of these (PROTOCOL.md §8).
var spellings = map[string]string{
	"etag":             "ETag",
	"www-authenticate": "WWW-Authenticate",
	"x-kii-appid":      "X-Kii-AppID",
	"x-kii-appkey":     "X-Kii-AppKey",
	"x-kii-requestid":  "X-Kii-RequestID",
	"x-kii-sdk":        "X-Kii-SDK",
	"x-mqtt-ttl":       "X-MQTT-TTL",
}

// maxSpelled is the length of the longest key in spellings.
const maxSpelled = len("www-authenticate")

// HeaderSpelling returns the conventional wire spelling of a header name
// given in any case: "x-kii-requestid" gives "X-Kii-RequestID",
// "x-mqtt-ttl" gives "X-MQTT-TTL", "content-type" gives "Content-Type".
// Names without a special spelling get textproto's canonical form.
func HeaderSpelling(name string) string {
	if len(name) <= maxSpelled {
		var buf [maxSpelled]byte
		for i := range len(name) {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		// The compiler does not allocate for a map index with string(bytes).
		if s, ok := spellings[string(buf[:len(name)])]; ok {
			return s
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// isTchar reports which bytes RFC 9110 allows in a token.
var isTchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if !isTchar[s[i]] {
			return false
		}
	}
	return true
}

// trimSpace trims spaces and horizontal tabs, the only white space HTTP
// allows around a field value.
func trimSpace(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// headerKey pairs a key of an http.Header with its wire spelling.
type headerKey struct{ spelled, key string }

// appendHeader writes h as CRLF-terminated lines, one per value, sorted by
// spelled name (then by map key, so that keys differing only in case are
// written in a stable order). Names that are not tokens are dropped, and NUL,
// CR and LF in values become spaces, as net/http does, so that a header can
// never split the message; values are trimmed so that they parse back equal.
func appendHeader(dst []byte, h http.Header) []byte {
	var arr [16]headerKey
	keys := arr[:0]
	for k, vv := range h {
		if len(vv) == 0 || !isToken(k) {
			continue
		}
		keys = append(keys, headerKey{HeaderSpelling(k), k})
	}
	slices.SortFunc(keys, func(a, b headerKey) int {
		if c := strings.Compare(a.spelled, b.spelled); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	for _, k := range keys {
		for _, v := range h[k.key] {
			dst = append(dst, k.spelled...)
			dst = append(dst, ':')
			dst = appendValue(dst, v)
			dst = append(dst, '\r', '\n')
		}
	}
	return dst
}

// appendValue appends " "+v with v sanitised and trimmed, or nothing for an
// empty value.
func appendValue(dst []byte, v string) []byte {
	if strings.ContainsAny(v, "\x00\r\n") {
		b := []byte(v)
		for i, c := range b {
			if c == 0 || c == '\r' || c == '\n' {
				b[i] = ' '
			}
		}
		v = string(b)
	}
	v = trimSpace(v)
	if v == "" {
		return dst
	}
	dst = append(dst, ' ')
	return append(dst, v...)
}
