package codec

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wireCase is one wire example: a raw payload and what it parses to, or the
// error it gives. The table drives the parse tests, the round-trip tests and
// the fuzz seed corpus.
type wireCase struct {
	name   string
	raw    string
	limits Limits
	// Exactly one of req, resp and err is set for a parse result; errors
	// are request errors unless response is true.
	req      *Request
	resp     *Response
	err      error
	response bool
	// enc is the exact encoding of the parsed value by AppendRequest or
	// AppendResponse.
	enc string
}

// onboardingLF is the request the MQTT onboarding sample sends
// (PROTOCOL.md §8): LF line ends, "Content-type", two spaces inside the JSON.
const onboardingLF = "POST\n" +
	"Content-type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n" +
	"\n" +
	`{"vendorThingID":"4649",  "thingPassword":"1234"}`

var wireCases = []wireCase{
	// Requests.
	{
		name: "onboarding sample LF only",
		raw:  onboardingLF,
		req: &Request{
			Method: "POST",
			Header: http.Header{"Content-Type": {"application/vnd.kii.OnboardingWithVendorThingIDByThing+json"}},
			Body:   []byte(`{"vendorThingID":"4649",  "thingPassword":"1234"}`),
		},
		enc: "POST\r\nContent-Type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\r\n\r\n" +
			`{"vendorThingID":"4649",  "thingPassword":"1234"}`,
	},
	{
		name: "CRLF state upload",
		raw: "PUT\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nX-Kii-RequestID: r-1\r\n\r\n" +
			`{"power":true,"presetTemperature":25}`,
		req: &Request{
			Method: "PUT",
			Header: http.Header{
				"Authorization":   {"Bearer tok"},
				"Content-Type":    {"application/json"},
				"X-Kii-Requestid": {"r-1"},
			},
			Body: []byte(`{"power":true,"presetTemperature":25}`),
		},
		enc: "PUT\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nX-Kii-RequestID: r-1\r\n\r\n" +
			`{"power":true,"presetTemperature":25}`,
	},
	{
		name: "no space after colon",
		raw:  "POST\nContent-type:x\n\nb",
		req:  &Request{Method: "POST", Header: http.Header{"Content-Type": {"x"}}, Body: []byte("b")},
		enc:  "POST\r\nContent-Type: x\r\n\r\nb",
	},
	{
		name: "mixed header case",
		raw:  "GET\nx-kii-requestid: r1\nCONTENT-TYPE: application/json\naUtHoRiZaTiOn: Bearer t\n\n",
		req: &Request{Method: "GET", Header: http.Header{
			"X-Kii-Requestid": {"r1"},
			"Content-Type":    {"application/json"},
			"Authorization":   {"Bearer t"},
		}},
		enc: "GET\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nX-Kii-RequestID: r1\r\n\r\n",
	},
	{
		name: "repeated headers keep order",
		raw:  "GET\r\nX-A: 1\r\nx-a: 2\r\nB: x\r\nX-A:3\r\n\r\n",
		req:  &Request{Method: "GET", Header: http.Header{"X-A": {"1", "2", "3"}, "B": {"x"}}},
		enc:  "GET\r\nB: x\r\nX-A: 1\r\nX-A: 2\r\nX-A: 3\r\n\r\n",
	},
	{
		name: "value padding trimmed",
		raw:  "GET\r\nX-A: \t v  w \t \r\nX-B:\t\tx\n\n",
		req:  &Request{Method: "GET", Header: http.Header{"X-A": {"v  w"}, "X-B": {"x"}}},
		enc:  "GET\r\nX-A: v  w\r\nX-B: x\r\n\r\n",
	},
	{
		name: "empty value",
		raw:  "GET\nX-Empty:\nX-Blank:   \n\n",
		req:  &Request{Method: "GET", Header: http.Header{"X-Empty": {""}, "X-Blank": {""}}},
		enc:  "GET\r\nX-Blank:\r\nX-Empty:\r\n\r\n",
	},
	{
		name: "empty body",
		raw:  "GET\r\nAuthorization: Bearer t\r\n\r\n",
		req:  &Request{Method: "GET", Header: http.Header{"Authorization": {"Bearer t"}}},
		enc:  "GET\r\nAuthorization: Bearer t\r\n\r\n",
	},
	{
		name: "body with blank lines and CRLFs kept byte for byte",
		raw:  "PUT\n\n{\r\n\r\n  \"a\": 1\n\n}\r\n\r\n",
		req:  &Request{Method: "PUT", Header: http.Header{}, Body: []byte("{\r\n\r\n  \"a\": 1\n\n}\r\n\r\n")},
		enc:  "PUT\r\n\r\n{\r\n\r\n  \"a\": 1\n\n}\r\n\r\n",
	},
	{
		name: "binary body",
		raw:  "PUT\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff\x01\r\n\r\n\x89PNG\n",
		req: &Request{
			Method: "PUT",
			Header: http.Header{"Content-Type": {"application/octet-stream"}},
			Body:   []byte("\x00\xff\x01\r\n\r\n\x89PNG\n"),
		},
		enc: "PUT\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff\x01\r\n\r\n\x89PNG\n",
	},
	{
		name: "body of white space only",
		raw:  "PUT\n\n \n",
		req:  &Request{Method: "PUT", Header: http.Header{}, Body: []byte(" \n")},
		enc:  "PUT\r\n\r\n \n",
	},
	{
		name: "no blank line at all",
		raw:  "GET\r\nAuthorization: Bearer t",
		req:  &Request{Method: "GET", Header: http.Header{"Authorization": {"Bearer t"}}},
		enc:  "GET\r\nAuthorization: Bearer t\r\n\r\n",
	},
	{
		name: "no blank line, final LF",
		raw:  "GET\nAuthorization: Bearer t\n",
		req:  &Request{Method: "GET", Header: http.Header{"Authorization": {"Bearer t"}}},
		enc:  "GET\r\nAuthorization: Bearer t\r\n\r\n",
	},
	{name: "method only", raw: "GET", req: &Request{Method: "GET", Header: http.Header{}}, enc: "GET\r\n\r\n"},
	{name: "method only LF", raw: "GET\n", req: &Request{Method: "GET", Header: http.Header{}}, enc: "GET\r\n\r\n"},
	{name: "method only CRLF", raw: "DELETE\r\n", req: &Request{Method: "DELETE", Header: http.Header{}}, enc: "DELETE\r\n\r\n"},
	{name: "method and blank line", raw: "GET\n\n", req: &Request{Method: "GET", Header: http.Header{}}, enc: "GET\r\n\r\n"},
	{name: "lone CR as last line", raw: "GET\n\r", req: &Request{Method: "GET", Header: http.Header{}}, enc: "GET\r\n\r\n"},
	{
		name: "lower-case method",
		raw:  "patch\ncontent-type: application/vnd.kii.MultipleTraitStatePatch+json\n\n{}",
		req: &Request{
			Method: "PATCH",
			Header: http.Header{"Content-Type": {"application/vnd.kii.MultipleTraitStatePatch+json"}},
			Body:   []byte("{}"),
		},
		enc: "PATCH\r\nContent-Type: application/vnd.kii.MultipleTraitStatePatch+json\r\n\r\n{}",
	},
	{name: "extension method token", raw: "M-SEARCH\n", req: &Request{Method: "M-SEARCH", Header: http.Header{}}, enc: "M-SEARCH\r\n\r\n"},
	{name: "white space around method", raw: " GET \t\r\n\r\n", req: &Request{Method: "GET", Header: http.Header{}}, enc: "GET\r\n\r\n"},
	{
		name: "leading blank lines",
		raw:  "\r\n\n\r\nPOST\nA: b\n\nx",
		req:  &Request{Method: "POST", Header: http.Header{"A": {"b"}}, Body: []byte("x")},
		enc:  "POST\r\nA: b\r\n\r\nx",
	},
	{
		name: "mixed line ends",
		raw:  "PUT\r\nA: 1\nB: 2\r\n\n\r\nbody",
		req:  &Request{Method: "PUT", Header: http.Header{"A": {"1"}, "B": {"2"}}, Body: []byte("\r\nbody")},
		enc:  "PUT\r\nA: 1\r\nB: 2\r\n\r\n\r\nbody",
	},
	{
		name: "content-length does not frame",
		raw:  "PUT\nContent-Length: 2\n\nabcdef",
		req:  &Request{Method: "PUT", Header: http.Header{"Content-Length": {"2"}}, Body: []byte("abcdef")},
		enc:  "PUT\r\nContent-Length: 2\r\n\r\nabcdef",
	},
	{
		name: "colon in value and obs-text",
		raw:  "GET\nX-Url: http://h:1/p\nX-T: caf\xc3\xa9 \xff\n\n",
		req:  &Request{Method: "GET", Header: http.Header{"X-Url": {"http://h:1/p"}, "X-T": {"caf\xc3\xa9 \xff"}}},
		enc:  "GET\r\nX-T: caf\xc3\xa9 \xff\r\nX-Url: http://h:1/p\r\n\r\n",
	},
	{
		name: "special spellings",
		raw:  "GET\nx-mqtt-ttl: 5\nETAG: e\nwww-authenticate: x\n\n",
		req:  &Request{Method: "GET", Header: http.Header{"X-Mqtt-Ttl": {"5"}, "Etag": {"e"}, "Www-Authenticate": {"x"}}},
		enc:  "GET\r\nETag: e\r\nWWW-Authenticate: x\r\nX-MQTT-TTL: 5\r\n\r\n",
	},
	{name: "empty payload", raw: "", err: ErrEmpty},
	{name: "blank lines only", raw: "\r\n\n\r\n", err: ErrEmpty},
	{name: "request line with path", raw: "GET /thing-if/apps/a/onboardings HTTP/1.1\r\n\r\n", err: ErrMethod},
	{name: "method with tab inside", raw: "GET\tx\n", err: ErrMethod},
	{name: "method not a token", raw: "G(ET\n\n", err: ErrMethod},
	{name: "method non-ASCII", raw: "G\xc3\x89T\n\n", err: ErrMethod},
	{name: "method with NUL", raw: "GET\x00\n\n", err: ErrMethod},
	{name: "method line is a header", raw: "Content-Type: x\n\n", err: ErrMethod},
	{name: "header without colon", raw: "GET\nAuthorization Bearer t\n\n", err: ErrHeader},
	{name: "header name with space", raw: "GET\nBad Name: x\n\n", err: ErrHeader},
	{name: "space before colon", raw: "GET\nName : x\n\n", err: ErrHeader},
	{name: "empty header name", raw: "GET\n: x\n\n", err: ErrHeader},
	{name: "folded header line", raw: "GET\nA: b\n c\n\n", err: ErrHeader},
	{name: "white space line in header", raw: "GET\nA: b\n \n\nbody", err: ErrHeader},
	{name: "NUL in value", raw: "GET\nA: b\x00c\n\n", err: ErrHeader},
	{name: "CR inside value", raw: "GET\nA: b\rc\n\n", err: ErrHeader},
	{name: "CR CR LF", raw: "GET\nA: b\r\r\n\n", err: ErrHeader},
	{name: "header error in last line without LF", raw: "GET\nA: b\nnocolon", err: ErrHeader},
	{name: "too many headers", raw: "GET\n" + strings.Repeat("X-A: 1\n", DefaultMaxHeaders+1) + "\n", err: ErrTooManyHeaders},
	{
		name: "headers at the default limit",
		raw:  "GET\n" + strings.Repeat("X-A: 1\n", DefaultMaxHeaders) + "\n",
		req:  &Request{Method: "GET", Header: http.Header{"X-A": strings.Split(strings.Repeat("1", DefaultMaxHeaders), "")}},
		enc:  "GET\r\n" + strings.Repeat("X-A: 1\r\n", DefaultMaxHeaders) + "\r\n",
	},
	{name: "too many headers, custom limit", raw: "GET\nA: 1\nB: 2\nC: 3\n\n", limits: Limits{MaxHeaders: 2}, err: ErrTooManyHeaders},
	{name: "too many headers, no blank line", raw: "GET\nA: 1\nB: 2\nC: 3", limits: Limits{MaxHeaders: 2}, err: ErrTooManyHeaders},
	{
		name:   "headers at a custom limit",
		raw:    "GET\nA: 1\nB: 2\n\n",
		limits: Limits{MaxHeaders: 2},
		req:    &Request{Method: "GET", Header: http.Header{"A": {"1"}, "B": {"2"}}},
		enc:    "GET\r\nA: 1\r\nB: 2\r\n\r\n",
	},
	{name: "oversized header block", raw: "GET\nX-Big: " + strings.Repeat("a", DefaultMaxHeaderBytes) + "\n\n{}", err: ErrHeaderTooLarge},
	{name: "oversized method line without LF", raw: "GET" + strings.Repeat("T", DefaultMaxHeaderBytes+10), err: ErrHeaderTooLarge},
	{name: "oversized leading blank lines", raw: strings.Repeat("\n", DefaultMaxHeaderBytes+1) + "GET\n", err: ErrHeaderTooLarge},
	{
		// "GET\n" and "A: bc\n" are exactly 10 bytes; the body does not count.
		name:   "header block at a custom byte limit",
		raw:    "GET\nA: bc\n\n" + strings.Repeat("z", 100),
		limits: Limits{MaxHeaderBytes: 10},
		req:    &Request{Method: "GET", Header: http.Header{"A": {"bc"}}, Body: []byte(strings.Repeat("z", 100))},
		enc:    "GET\r\nA: bc\r\n\r\n" + strings.Repeat("z", 100),
	},
	{
		name:   "CRLF blank line just past a custom byte limit",
		raw:    "GET\nA: bc\n\r\nx",
		limits: Limits{MaxHeaderBytes: 10},
		req:    &Request{Method: "GET", Header: http.Header{"A": {"bc"}}, Body: []byte("x")},
		enc:    "GET\r\nA: bc\r\n\r\nx",
	},
	{name: "header block one byte over a custom limit", raw: "GET\nA: bcd\n\n", limits: Limits{MaxHeaderBytes: 10}, err: ErrHeaderTooLarge},
	{name: "header block over a custom limit, no LF", raw: "GET\nA: bcdefgh", limits: Limits{MaxHeaderBytes: 10}, err: ErrHeaderTooLarge},

	// Responses.
	{
		name:     "response with headers",
		raw:      "200\r\nContent-Type: application/json\r\nX-Kii-RequestID: abc\r\n\r\n{\"thingID\":\"th.1\"}",
		response: true,
		resp: &Response{
			StatusCode: 200,
			Header:     http.Header{"Content-Type": {"application/json"}, "X-Kii-Requestid": {"abc"}},
			Body:       []byte(`{"thingID":"th.1"}`),
		},
		enc: "200\r\nContent-Type: application/json\r\nX-Kii-RequestID: abc\r\n\r\n{\"thingID\":\"th.1\"}",
	},
	{
		name:     "response without headers",
		raw:      "204\r\n\r\n",
		response: true,
		resp:     &Response{StatusCode: 204, Header: http.Header{}},
		enc:      "204\r\n\r\n",
	},
	{
		name:     "response LF only, lower-case header",
		raw:      "\n404\nx-kii-requestid: r\ncontent-type:application/vnd.kii.ThingNotFoundException+json\n\n{\"errorCode\":\"THING_NOT_FOUND\"}\n",
		response: true,
		resp: &Response{
			StatusCode: 404,
			Header: http.Header{
				"X-Kii-Requestid": {"r"},
				"Content-Type":    {"application/vnd.kii.ThingNotFoundException+json"},
			},
			Body: []byte("{\"errorCode\":\"THING_NOT_FOUND\"}\n"),
		},
		enc: "404\r\nContent-Type: application/vnd.kii.ThingNotFoundException+json\r\nX-Kii-RequestID: r\r\n\r\n{\"errorCode\":\"THING_NOT_FOUND\"}\n",
	},
	{name: "response status only", raw: "599", response: true, resp: &Response{StatusCode: 599, Header: http.Header{}}, enc: "599\r\n\r\n"},
	{name: "response status 100", raw: "100\n\n", response: true, resp: &Response{StatusCode: 100, Header: http.Header{}}, enc: "100\r\n\r\n"},
	{name: "response empty", raw: "", response: true, err: ErrEmpty},
	{name: "response reason phrase", raw: "200 OK\r\n\r\n", response: true, err: ErrStatus},
	{name: "response HTTP status line", raw: "HTTP/1.1 200 OK\r\n\r\n", response: true, err: ErrStatus},
	{name: "response status word", raw: "OK\r\n\r\n", response: true, err: ErrStatus},
	{name: "response two digits", raw: "20\r\n\r\n", response: true, err: ErrStatus},
	{name: "response four digits", raw: "2000\r\n\r\n", response: true, err: ErrStatus},
	{name: "response status below 100", raw: "099\r\n\r\n", response: true, err: ErrStatus},
	{name: "response status above 599", raw: "600\r\n\r\n", response: true, err: ErrStatus},
	{name: "response status not digits", raw: "2x0\r\n\r\n", response: true, err: ErrStatus},
	{name: "response signed status", raw: "+20\r\n\r\n", response: true, err: ErrStatus},
	{name: "response bad header", raw: "200\r\nno colon\r\n\r\n", response: true, err: ErrHeader},
}

func TestParseRequest(t *testing.T) {
	for _, c := range wireCases {
		if c.response {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRequestLimits([]byte(c.raw), c.limits)
			if c.err != nil {
				if !errors.Is(err, c.err) || got != nil {
					t.Fatalf("ParseRequestLimits()=%+v, %v; want error %v", got, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequestLimits(): %v", err)
			}
			if diff := cmp.Diff(c.req, got); diff != "" {
				t.Errorf("ParseRequestLimits() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	for _, c := range wireCases {
		if !c.response {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseResponseLimits([]byte(c.raw), c.limits)
			if c.err != nil {
				if !errors.Is(err, c.err) || got != nil {
					t.Fatalf("ParseResponseLimits()=%+v, %v; want error %v", got, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResponseLimits(): %v", err)
			}
			if diff := cmp.Diff(c.resp, got); diff != "" {
				t.Errorf("ParseResponseLimits() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRoundTrip encodes every parsed example, compares the exact bytes, and
// parses them back to the same value.
func TestRoundTrip(t *testing.T) {
	for _, c := range wireCases {
		if c.err != nil {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			var enc []byte
			var again any
			var err error
			if c.response {
				enc = AppendResponse(nil, c.resp.StatusCode, c.resp.Header, c.resp.Body)
				again, err = ParseResponseLimits(enc, c.limits)
			} else {
				enc = AppendRequest(nil, c.req.Method, c.req.Header, c.req.Body)
				again, err = ParseRequestLimits(enc, Limits{MaxHeaders: c.limits.MaxHeaders, MaxHeaderBytes: 1 << 20})
			}
			if got, want := string(enc), c.enc; got != want {
				t.Errorf("encoded=%q, want %q", got, want)
			}
			if err != nil {
				t.Fatalf("parse encoded %q: %v", enc, err)
			}
			var want any = c.req
			if c.response {
				want = c.resp
			}
			if diff := cmp.Diff(want, again); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseDoesNotAlias checks that a parsed request does not change when
// the caller reuses the payload buffer.
func TestParseDoesNotAlias(t *testing.T) {
	payload := []byte("put\nA: b\n\nbody")
	req, err := ParseRequest(payload)
	if err != nil {
		t.Fatal(err)
	}
	for i := range payload {
		payload[i] = 'X'
	}
	want := &Request{Method: "PUT", Header: http.Header{"A": {"b"}}, Body: []byte("body")}
	if diff := cmp.Diff(want, req); diff != "" {
		t.Errorf("request changed with its payload (-want +got):\n%s", diff)
	}
}

func TestAppendRequest(t *testing.T) {
	tests := []struct {
		name   string
		dst    string
		method string
		h      http.Header
		body   string
		want   string
	}{
		{name: "nil header", method: "GET", want: "GET\r\n\r\n"},
		{name: "appends to dst", dst: "xx", method: "get", body: "b", want: "xxGET\r\n\r\nb"},
		{
			name:   "non-canonical keys spelled and sorted",
			method: "PUT",
			h:      http.Header{"x-kii-requestid": {"r"}, "content-type": {"application/json"}, "Authorization": {"Bearer t"}},
			body:   "{}",
			want:   "PUT\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nX-Kii-RequestID: r\r\n\r\n{}",
		},
		{
			name:   "keys differing in case both written, in key order",
			method: "GET",
			h:      http.Header{"x-a": {"2"}, "X-A": {"1"}},
			want:   "GET\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
		},
		{
			name:   "header injection neutralised",
			method: "GET",
			h:      http.Header{"X-A": {"v\r\n\r\nGET\x00"}},
			want:   "GET\r\nX-A: v    GET\r\n\r\n",
		},
		{
			name:   "invalid names and empty value lists dropped",
			method: "GET",
			h:      http.Header{"Bad Name": {"x"}, "": {"y"}, "X-None": {}, "Ok": {" v "}},
			want:   "GET\r\nOk: v\r\n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendRequest([]byte(tt.dst), tt.method, tt.h, []byte(tt.body))
			if got, want := string(got), tt.want; got != want {
				t.Fatalf("AppendRequest()=%q, want %q", got, want)
			}
		})
	}
}

func TestAppendResponseStatus(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{
		{200, "200\r\n\r\n"},
		{100, "100\r\n\r\n"},
		{599, "599\r\n\r\n"},
		{0, "500\r\n\r\n"},
		{99, "500\r\n\r\n"},
		{600, "500\r\n\r\n"},
		{-200, "500\r\n\r\n"},
	}
	for _, tt := range tests {
		if got := string(AppendResponse(nil, tt.status, nil, nil)); got != tt.want {
			t.Errorf("AppendResponse(%d)=%q, want %q", tt.status, got, tt.want)
		}
	}
}

// sentinels are every error the parsers may return, wrapped.
var sentinels = []error{ErrEmpty, ErrMethod, ErrHeader, ErrTooManyHeaders, ErrHeaderTooLarge, ErrStatus}

func checkParseError(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}

// relaxed returns l with a header byte limit large enough for a re-encoded
// header block, which may be longer than the original (CRLF, ": ").
func relaxed(l Limits) Limits {
	l.MaxHeaderBytes = 1 << 30
	return l
}

func FuzzParseRequest(f *testing.F) {
	for _, c := range wireCases {
		if !c.response {
			f.Add([]byte(c.raw), uint8(c.limits.MaxHeaders), uint16(c.limits.MaxHeaderBytes))
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte, maxHeaders uint8, maxBytes uint16) {
		l := Limits{MaxHeaders: int(maxHeaders), MaxHeaderBytes: int(maxBytes)}
		req, err := ParseRequestLimits(payload, l)
		if err != nil {
			if req != nil {
				t.Fatalf("ParseRequestLimits()=%+v with error %v", req, err)
			}
			checkParseError(t, err)
			return
		}
		enc := AppendRequest(nil, req.Method, req.Header, req.Body)
		again, err := ParseRequestLimits(enc, relaxed(l))
		if err != nil {
			t.Fatalf("parse re-encoded %q (from %q): %v", enc, payload, err)
		}
		if diff := cmp.Diff(req, again); diff != "" {
			t.Fatalf("round trip of %q mismatch (-first +second):\n%s", payload, diff)
		}
		if enc2 := AppendRequest(nil, again.Method, again.Header, again.Body); string(enc2) != string(enc) {
			t.Fatalf("encoding not stable: %q then %q", enc, enc2)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, c := range wireCases {
		if c.response {
			f.Add([]byte(c.raw))
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		resp, err := ParseResponse(payload)
		if err != nil {
			if resp != nil {
				t.Fatalf("ParseResponse()=%+v with error %v", resp, err)
			}
			checkParseError(t, err)
			return
		}
		enc := AppendResponse(nil, resp.StatusCode, resp.Header, resp.Body)
		again, err := ParseResponseLimits(enc, relaxed(Limits{}))
		if err != nil {
			t.Fatalf("parse re-encoded %q (from %q): %v", enc, payload, err)
		}
		if diff := cmp.Diff(resp, again); diff != "" {
			t.Fatalf("round trip of %q mismatch (-first +second):\n%s", payload, diff)
		}
		if enc2 := AppendResponse(nil, again.StatusCode, again.Header, again.Body); string(enc2) != string(enc) {
			t.Fatalf("encoding not stable: %q then %q", enc, enc2)
		}
	})
}

// stateUpload is a typical request on the hot path.
var stateUpload = []byte("PUT\r\n" +
	"Authorization: Bearer 9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d\r\n" +
	"Content-Type: application/vnd.kii.MultipleTraitState+json\r\n" +
	"X-Kii-RequestID: 1f2e3d4c\r\n" +
	"\r\n" +
	`{"AirConditionerAlias":{"power":true,"presetTemperature":25},"HumidityAlias":{"currentHumidity":45}}`)

func BenchmarkParseRequest(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(stateUpload)))
	for b.Loop() {
		if _, err := ParseRequest(stateUpload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequestLF(b *testing.B) {
	payload := []byte(onboardingLF)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := ParseRequest(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	h := http.Header{
		"Content-Type":    {"application/json"},
		"X-Kii-Requestid": {"1f2e3d4c"},
	}
	body := []byte(`{"commandID":"3c2b1a00-1111-2222-3333-444455556666"}`)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendResponse(buf[:0], 201, h, body)
	}
}
