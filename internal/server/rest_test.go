package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// These tests write HTTP the way Kii's embedded C SDK does (PROTOCOL.md §8)
// on raw connections, and read the raw answers: absolute-URI request lines,
// an upper-case HOST header, chunked bodies, Connection: Close, and a stray
// "0\r\n\r\n" after a GET.

// strayChunk is what the C SDK writes after the headers of a GET.
const strayChunk = "0\r\n\r\n"

// sdkRequest is one request as the C SDK writes it.
type sdkRequest struct {
	method, path string
	header       [][2]string // in order, spelled as given
	body         string      // sent chunked when not empty (or when chunked)
	chunked      bool        // send a chunked body even if empty
	requestID    string      // X-Kii-RequestID, if not empty
}

// bytes renders the request for the listener at scheme://host.
func (r sdkRequest) bytes(scheme, host string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s://%s%s HTTP/1.1\r\n", r.method, scheme, host, r.path)
	fmt.Fprintf(&b, "HOST: %s\r\n", host)
	for _, h := range r.header {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	if r.requestID != "" {
		fmt.Fprintf(&b, "X-Kii-RequestID: %s\r\n", r.requestID)
	}
	chunked := r.chunked || r.body != ""
	if chunked {
		b.WriteString("Transfer-Encoding: chunked\r\n")
	}
	b.WriteString("Connection: Close\r\n\r\n")
	if chunked {
		// Several small chunks, as a device with a small buffer writes.
		for body := r.body; body != ""; {
			n := min(len(body), 100)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
			body = body[n:]
		}
		b.WriteString("0\r\n\r\n")
	}
	return b.Bytes()
}

// sdkAnswer is a raw answer and its parse.
type sdkAnswer struct {
	raw    []byte
	header string // status line and headers, as sent
	status int
	body   []byte
	res    *http.Response
}

// sdkDial connects to the server's HTTP listener, or to its HTTPS listener
// when secure.
func sdkDial(t *testing.T, s *Server, secure bool) (conn net.Conn, scheme, host string) {
	t.Helper()
	name, scheme := "http", "http"
	if secure {
		name, scheme = "https", "https"
	}
	host = s.Addr(name).String()
	c, err := net.DialTimeout("tcp", host, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	conn = c
	if secure {
		tc := tls.Client(c, clientTLS(t, s))
		if err := tc.Handshake(); err != nil {
			c.Close()
			t.Fatalf("TLS handshake: %v", err)
		}
		conn = tc
	}
	t.Cleanup(func() { conn.Close() })
	return conn, scheme, host
}

// Pauses of sdkExchange. straySettle outlasts Go's own half-second wait
// between shutting down the write side of a connection and closing it, so
// that a server closing with the stray bytes unread has sent its reset by the
// time the client reads, as it has for a slow device.
const (
	strayPause  = 100 * time.Millisecond
	straySettle = 750 * time.Millisecond
)

// sdkExchange writes each part in its own write (pausing between them, so
// that a later part arrives after the server has read the earlier ones),
// reads the whole answer, and requires the server to end the connection
// with a FIN: the last Read returns io.EOF, never a reset. With more than
// one part, it waits straySettle and writes again before reading.
func sdkExchange(t *testing.T, conn net.Conn, parts ...[]byte) sdkAnswer {
	t.Helper()
	for i, p := range parts {
		if i > 0 {
			time.Sleep(strayPause)
		}
		if _, err := conn.Write(p); err != nil {
			t.Fatalf("write part %d: %v", i, err)
		}
	}
	if len(parts) > 1 {
		// Linux hides a reset that follows the FIN from reads (they return
		// the answer, then EOF), but not from writes: a device still
		// writing is what dies of SIGPIPE. So write once more.
		time.Sleep(straySettle)
		if _, err := conn.Write([]byte("\r\n")); err != nil {
			t.Fatalf("write after the answer: %v: the server reset the connection", err)
		}
	}
	return sdkRead(t, conn)
}

// sdkRead reads until the server closes the connection and requires a
// graceful close.
func sdkRead(t *testing.T, conn net.Conn) sdkAnswer {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		raw = append(raw, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read answer: %v (not a graceful close) after %q", err, raw)
		}
	}
	a := sdkAnswer{raw: raw}
	head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("answer without end of headers: %q", raw)
	}
	a.header = string(head)
	res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatalf("parse answer %q: %v", raw, err)
	}
	a.body, err = io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("answer body %q: %v", raw, err)
	}
	a.status, a.res = res.StatusCode, res
	return a
}

// sdkCall sends r over a new connection and checks what every answer must
// be: X-Kii-RequestID exactly when asked for and echoed, a compact body,
// the wanted status, a graceful close. The stray parts are written
// afterwards, each in its own write.
func sdkCall(t *testing.T, s *Server, secure bool, r sdkRequest, want int, stray ...string) sdkAnswer {
	t.Helper()
	conn, scheme, host := sdkDial(t, s, secure)
	parts := [][]byte{r.bytes(scheme, host)}
	for _, p := range stray {
		parts = append(parts, []byte(p))
	}
	a := sdkExchange(t, conn, parts...)
	what := r.method + " " + r.path
	if a.status != want {
		t.Fatalf("%s: status %d, want %d: %q", what, a.status, want, a.raw)
	}
	if r.requestID != "" {
		if !strings.Contains(a.header, "\r\nX-Kii-RequestID: "+r.requestID+"\r\n") {
			t.Fatalf("%s: request ID %q not echoed as X-Kii-RequestID: %q", what, r.requestID, a.header)
		}
	} else if strings.Contains(a.header, "X-Kii-RequestID:") {
		t.Fatalf("%s: X-Kii-RequestID in the answer to a request without one: %q", what, a.header)
	}
	if bytes.Contains(a.body, []byte("\n  ")) || bytes.Contains(a.body, []byte("\n\t")) {
		t.Fatalf("%s: indented body %q", what, a.body)
	}
	return a
}

// decode unmarshals a JSON answer body.
func (a sdkAnswer) decode(t *testing.T, v any) {
	t.Helper()
	if ct := a.res.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Fatalf("Content-Type %q, want JSON: %q", ct, a.raw)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer body %q: %v", a.body, err)
	}
}

// headerLine returns the value of the first header line spelled exactly
// name, and whether there is one.
func (a sdkAnswer) headerLine(name string) (string, bool) {
	for _, l := range strings.Split(a.header, "\r\n")[1:] {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// recordingConn records what a client writes.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *recordingConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

// TestEmbeddedSDKOverREST runs the C SDK's whole device flow: anonymous
// token with a dummy secret, onboarding, installation, MQTT endpoint (with
// the stray bytes after the GET), an MQTT 3.1 connection as the SDK makes it,
// a pushed command, action results, states and the firmware version.
func TestEmbeddedSDKOverREST(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	admin := adminToken(t, s)
	api := "/api/apps/" + testAppID
	thingIF := "/thing-if/apps/" + testAppID

	// 1. Anonymous token: the SDK sends the literal secret "dummy".
	tokenReq := sdkRequest{
		method: "POST", path: api + "/oauth2/token",
		header: [][2]string{{"Content-Type", "application/json"}},
		body:   `{"grant_type":"client_credentials","client_id":"` + testAppID + `","client_secret":"dummy"}`,
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	sdkCall(t, s, false, tokenReq, 200).decode(t, &tok)
	if tok.AccessToken == "" {
		t.Fatal("no access_token")
	}
	// The same over HTTPS, with a request ID.
	tokenReq.requestID = "tok-tls"
	var tok2 struct {
		AccessToken string `json:"access_token"`
	}
	sdkCall(t, s, true, tokenReq, 200).decode(t, &tok2)
	if tok2.AccessToken == "" {
		t.Fatal("no access_token over HTTPS")
	}

	// 2. Onboarding with the anonymous token.
	var ob struct {
		AccessToken string `json:"accessToken"`
		ThingID     string `json:"thingID"`
	}
	sdkCall(t, s, false, sdkRequest{
		method: "POST", path: thingIF + "/onboardings", requestID: "onb-1",
		header: [][2]string{
			{"Authorization", "Bearer " + tok.AccessToken},
			{"Content-Type", "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"},
		},
		body: `{"vendorThingID":"vt-csdk","thingPassword":"pw-csdk","thingType":"AirConditioner"}`,
	}, 200).decode(t, &ob)
	if ob.AccessToken == "" || !strings.HasPrefix(ob.ThingID, "th.") {
		t.Fatalf("onboarding answer %+v", ob)
	}
	thingAuth := [2]string{"Authorization", "Bearer " + ob.AccessToken}

	// 3. Installation, with the dummy app key and "development" a string.
	var inst struct {
		InstallationID string `json:"installationID"`
	}
	sdkCall(t, s, false, sdkRequest{
		method: "POST", path: api + "/installations",
		header: [][2]string{
			{"X-Kii-Appid", testAppID}, {"X-Kii-Appkey", "k"}, thingAuth,
			{"Content-Type", "application/vnd.kii.InstallationCreationRequest+json"},
		},
		body: `{"deviceType":"MQTT","development":"false"}`,
	}, 201).decode(t, &inst)
	if inst.InstallationID == "" {
		t.Fatal("no installationID")
	}

	// 4. MQTT endpoint, the stray chunk in the same write as the GET.
	endpointReq := sdkRequest{
		method: "GET", path: api + "/installations/" + inst.InstallationID + "/mqtt-endpoint",
		header: [][2]string{{"X-Kii-Appid", testAppID}, {"X-Kii-Appkey", "k"}, thingAuth},
	}
	conn, scheme, host := sdkDial(t, s, false)
	a := sdkExchange(t, conn, append(endpointReq.bytes(scheme, host), strayChunk...))
	if a.status != 200 {
		t.Fatalf("mqtt-endpoint: %q", a.raw)
	}
	ttl, ok := a.headerLine("X-MQTT-TTL")
	if n, err := strconv.ParseInt(ttl, 10, 64); !ok || err != nil || n <= 0 {
		t.Fatalf("X-MQTT-TTL %q (present %v), want a positive integer: %q", ttl, ok, a.header)
	}
	// Every field the C SDK parses from the body, by name and JSON type:
	// with one missing its MQTT task ends for good (PROTOCOL.md §8.4).
	var ep map[string]any
	a.decode(t, &ep)
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	var num map[string]any
	if err := dec.Decode(&num); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"username", "password", "host", "mqttTopic"} {
		if v, _ := ep[k].(string); v == "" {
			t.Fatalf("mqtt-endpoint field %s is not a non-empty string: %s", k, a.body)
		}
	}
	for _, k := range []string{"portTCP", "portSSL", "X-MQTT-TTL"} {
		v, _ := num[k].(json.Number)
		if n, err := strconv.ParseInt(string(v), 10, 64); err != nil || n <= 0 {
			t.Fatalf("mqtt-endpoint field %s is not a positive integer: %s", k, a.body)
		}
	}
	if got := string(num["X-MQTT-TTL"].(json.Number)); got != ttl {
		t.Fatalf("body X-MQTT-TTL %s, header %s: want the same", got, ttl)
	}
	if ep["host"] != "127.0.0.1" || ep["portTCP"] != float64(s.Port("mqtt-tcp")) || ep["portSSL"] != float64(s.Port("mqtt-tls")) {
		t.Fatalf("mqtt-endpoint %s does not name the API broker", a.body)
	}

	// 5. MQTT 3.1 as the SDK connects: MQIsdp level 3, keep-alive 300,
	// clean session, SUBSCRIBE mqttTopic at QoS 0 with packet id 1.
	topic := ep["mqttTopic"].(string)
	var rec *recordingConn
	msgs := make(chan paho.Message, 8)
	opts := paho.NewClientOptions().AddBroker(fmt.Sprintf("tcp://%s:%d", ep["host"], int(ep["portTCP"].(float64)))).
		SetClientID(topic).SetUsername(ep["username"].(string)).SetPassword(ep["password"].(string)).
		SetProtocolVersion(3).SetCleanSession(true).SetKeepAlive(300 * time.Second).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitFor).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, waitFor)
			if err != nil {
				return nil, err
			}
			rec = &recordingConn{Conn: c}
			return rec, nil
		}).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { msgs <- m })
	mc := paho.NewClient(opts)
	if tk := mc.Connect(); !tk.WaitTimeout(waitFor) || tk.Error() != nil {
		t.Fatalf("MQTT 3.1 connect: %v", tk.Error())
	}
	t.Cleanup(func() { mc.Disconnect(0) })
	st := mc.Subscribe(topic, 0, nil)
	if !st.WaitTimeout(waitFor) || st.Error() != nil {
		t.Fatalf("subscribe: %v", st.Error())
	}
	if got := st.(*paho.SubscribeToken).Result()[topic]; got != 0 {
		t.Fatalf("SUBACK %#x, want 0", got)
	}
	checkSDKPackets(t, rec.written(), topic)

	cid := sendCommand(t, s, admin, ob.ThingID, `[{"turnPower":{"power":true}}]`)
	select {
	case m := <-msgs:
		if m.Topic() != topic || m.Qos() != 0 || !strings.Contains(string(m.Payload()), cid) {
			t.Fatalf("push on %s QoS %d: %s, want command %s at QoS 0", m.Topic(), m.Qos(), m.Payload(), cid)
		}
	case <-time.After(waitFor):
		t.Fatal("no push")
	}
	waitState(t, s, admin, ob.ThingID, cid, "DELIVERED")

	// 6. Action results and states over REST.
	target := thingIF + "/targets/thing:" + ob.ThingID
	sdkCall(t, s, false, sdkRequest{
		method: "PUT", path: target + "/commands/" + cid + "/action-results", requestID: "ar-1",
		header: [][2]string{thingAuth, {"Content-Type", "application/vnd.kii.CommandResultsUpdateRequest+json"}},
		body:   `{"actionResults":[{"turnPower":{"succeeded":true}}]}`,
	}, 204)
	if got := commandState(t, s, admin, ob.ThingID, cid); got != "DONE" {
		t.Fatalf("command state %s, want DONE", got)
	}
	sdkCall(t, s, false, sdkRequest{
		method: "PUT", path: target + "/states",
		header: [][2]string{thingAuth, {"Content-Type", "application/vnd.kii.MultipleTraitState+json"}},
		body:   `{"AirConditionerAlias":{"power":true,"presetTemperature":25}}`,
	}, 204)
	var state map[string]map[string]any
	if code := rest(t, s, "GET", target+"/states", admin, "", "", &state); code != 200 || state["AirConditionerAlias"]["presetTemperature"] != 25.0 {
		t.Fatalf("state after the SDK's PUT: %d %v", code, state)
	}

	// Firmware version: 404 before it is set, PUT 204, then GET 200.
	fw := thingIF + "/things/" + ob.ThingID + "/firmware-version"
	fwGet := sdkRequest{method: "GET", path: fw, header: [][2]string{thingAuth}, requestID: "fw-get"}
	sdkCall(t, s, false, fwGet, 404, strayChunk)
	sdkCall(t, s, false, sdkRequest{
		method: "PUT", path: fw,
		header: [][2]string{thingAuth, {"Content-Type", "application/vnd.kii.ThingFirmwareVersionUpdateRequest+json"}},
		body:   `{"firmwareVersion":"1.0.1"}`,
	}, 204)
	var v struct {
		FirmwareVersion string `json:"firmwareVersion"`
	}
	sdkCall(t, s, true, fwGet, 200, strayChunk).decode(t, &v)
	if v.FirmwareVersion != "1.0.1" {
		t.Fatalf("firmwareVersion %q, want 1.0.1", v.FirmwareVersion)
	}

	// The stray chunk in a separate write after a pause lands after the
	// request was read: the close must still be graceful, over HTTP and
	// HTTPS.
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("stray bytes later/tls=%v", secure), func(t *testing.T) {
			endpointReq.requestID = "ep-late"
			a := sdkCall(t, s, secure, endpointReq, 200, strayChunk)
			if _, ok := a.headerLine("X-MQTT-TTL"); !ok {
				t.Fatalf("no X-MQTT-TTL: %q", a.header)
			}
		})
	}
}

// checkSDKPackets checks the CONNECT and the first SUBSCRIBE a client wrote:
// what Kii's C SDK sends.
func checkSDKPackets(t *testing.T, out []byte, topic string) {
	t.Helper()
	// CONNECT: type 1, remaining length (one byte here), "MQIsdp", level 3,
	// flags, keep-alive.
	if len(out) < 14 || out[0] != 0x10 {
		t.Fatalf("first packet % x is not a CONNECT", out[:min(len(out), 16)])
	}
	connectLen := int(out[1])
	if out[1]&0x80 != 0 {
		t.Fatalf("CONNECT longer than the test parses: % x", out[:16])
	}
	vh := out[2:]
	if got := string(vh[:8]); got != "\x00\x06MQIsdp" {
		t.Fatalf("protocol name %q, want MQIsdp", got)
	}
	if vh[8] != 3 {
		t.Fatalf("protocol level %d, want 3", vh[8])
	}
	if vh[9]&0x02 == 0 {
		t.Fatalf("connect flags %#x: not a clean session", vh[9])
	}
	if ka := int(vh[10])<<8 | int(vh[11]); ka != 300 {
		t.Fatalf("keep-alive %d, want 300", ka)
	}
	sub := out[2+connectLen:]
	if len(sub) < 4 || sub[0] != 0x82 {
		t.Fatalf("packet after CONNECT % x is not a SUBSCRIBE", sub[:min(len(sub), 8)])
	}
	want := append([]byte{0x00, 0x01, byte(len(topic) >> 8), byte(len(topic))}, topic...)
	want = append(want, 0x00)
	if got := sub[2:]; int(sub[1]) != len(want) || !bytes.HasPrefix(got, want) {
		t.Fatalf("SUBSCRIBE % x, want packet id 1, %s, QoS 0", sub, topic)
	}
}

// TestRESTBadRequests: a malformed request line and an oversize body get a
// clean 4xx, closed gracefully, and the server keeps serving.
func TestRESTBadRequests(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	alive := func(t *testing.T) {
		t.Helper()
		sdkCall(t, s, false, sdkRequest{
			method: "POST", path: "/api/apps/" + testAppID + "/oauth2/token",
			header: [][2]string{{"Content-Type", "application/json"}},
			body:   `{"grant_type":"client_credentials","client_id":"` + testAppID + `","client_secret":"dummy"}`,
		}, 200)
	}
	status := regexp.MustCompile(`^HTTP/1\.[01] (4\d\d) `)
	bad := []struct {
		name string
		raw  string
	}{
		{"garbage request line", "HELLO\r\n\r\n"},
		{"request line without version", "GET /api/apps/" + testAppID + "/oauth2/token\r\nHOST: x\r\n\r\n"},
		{"bad version", "GET / HTTP/9.Z\r\nHOST: x\r\n\r\n"},
		{"space in URI", "GET /a b c HTTP/1.1\r\nHOST: x\r\n\r\n"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			conn, _, _ := sdkDial(t, s, false)
			a := sdkExchange(t, conn, []byte(tt.raw))
			if !status.MatchString(a.header) {
				t.Fatalf("answer %q, want a 4xx", a.raw)
			}
			alive(t)
		})
	}

	t.Run("oversize body", func(t *testing.T) {
		anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
		if err != nil {
			t.Fatal(err)
		}
		ob := onboard(t, anon, "vt-big", "pw")
		// Just over 1 MiB: the server stops reading at the limit, and what
		// is left fits in what it drains before closing.
		body := `{"AirConditionerAlias":{"power":true,"pad":"` + strings.Repeat("x", 1<<20) + `"}}`
		req := sdkRequest{
			method: "PUT", path: "/thing-if/apps/" + testAppID + "/targets/thing:" + ob.ThingID + "/states", requestID: "big",
			header: [][2]string{{"Authorization", "Bearer " + ob.AccessToken}, {"Content-Type", "application/vnd.kii.MultipleTraitState+json"}},
			body:   body,
		}
		conn, scheme, host := sdkDial(t, s, false)
		// Write while reading: the server answers before it has read all.
		werr := make(chan error, 1)
		go func() {
			_, err := conn.Write(req.bytes(scheme, host))
			werr <- err
		}()
		a := sdkRead(t, conn)
		if a.status != 413 {
			t.Fatalf("oversize body: %q, want 413", a.header)
		}
		if !strings.Contains(a.header, "\r\nX-Kii-RequestID: big\r\n") {
			t.Fatalf("request ID not echoed on 413: %q", a.header)
		}
		if err := <-werr; err != nil {
			t.Logf("write of the oversize request: %v", err)
		}
		if code := rest(t, s, "GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+ob.ThingID+"/states", adminToken(t, s), "", "", nil); code != 404 {
			t.Fatalf("state after a refused oversize PUT: %d, want 404 (none stored)", code)
		}
		alive(t)
	})
}

// TestEmptyChunkedBody: an embedded stack that has nothing to send writes a
// chunked body of "0\r\n\r\n" alone; every call that needs a body answers
// 400 EMPTY_BODY, as Kii does, and closes gracefully.
func TestEmptyChunkedBody(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob := onboard(t, anon, "vt-empty", "pw")
	thingAuth := [2]string{"Authorization", "Bearer " + ob.AccessToken}
	target := "/thing-if/apps/" + testAppID + "/targets/thing:" + ob.ThingID
	for _, tt := range []struct {
		name string
		req  sdkRequest
	}{
		{"token", sdkRequest{method: "POST", path: "/api/apps/" + testAppID + "/oauth2/token",
			header: [][2]string{{"Content-Type", "application/json"}}}},
		{"onboarding", sdkRequest{method: "POST", path: "/thing-if/apps/" + testAppID + "/onboardings",
			header: [][2]string{thingAuth, {"Content-Type", "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"}}}},
		{"installation", sdkRequest{method: "POST", path: "/api/apps/" + testAppID + "/installations",
			header: [][2]string{thingAuth, {"Content-Type", "application/vnd.kii.InstallationCreationRequest+json"}}}},
		{"states", sdkRequest{method: "PUT", path: target + "/states",
			header: [][2]string{thingAuth, {"Content-Type", "application/vnd.kii.MultipleTraitState+json"}}}},
		{"states-bulk", sdkRequest{method: "POST", path: target + "/states-bulk",
			header: [][2]string{thingAuth, {"Content-Type", "application/vnd.kii.StateBulkUploadRequest+json"}}}},
		{"firmware version", sdkRequest{method: "PUT", path: "/thing-if/apps/" + testAppID + "/things/" + ob.ThingID + "/firmware-version",
			header: [][2]string{thingAuth, {"Content-Type", "application/vnd.kii.ThingFirmwareVersionUpdateRequest+json"}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.chunked, tt.req.requestID = true, "empty-"+strings.ReplaceAll(tt.name, " ", "-")
			a := sdkCall(t, s, false, tt.req, 400)
			var e struct {
				ErrorCode string `json:"errorCode"`
			}
			a.decode(t, &e)
			if got, want := e.ErrorCode, "EMPTY_BODY"; got != want {
				t.Fatalf("errorCode %q, want %q: %s", got, want, a.body)
			}
			if got, want := a.res.Header.Get("Content-Type"), "application/vnd.kii.EmptyBodyException+json"; got != want {
				t.Fatalf("Content-Type %q, want %q", got, want)
			}
		})
	}
}
