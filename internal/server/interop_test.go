package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/thingif/thingif/codec"
)

// These tests drive the server with MQTT clients we did not write: the
// Mosquitto command-line clients (libmosquitto) and Eclipse Paho for Python.
// They skip when the programs are missing, and fail instead under
// THINGIF_INTEGRATION=1 (set by .ci/run).

// debianPython is Debian's interpreter, which is the one that sees the
// python3-paho-mqtt package; a python3 earlier on PATH may not.
const debianPython = "/usr/bin/python3"

// missing skips the test, or fails it when THINGIF_INTEGRATION=1.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("THINGIF_INTEGRATION") == "1" {
		t.Fatalf("%s (THINGIF_INTEGRATION=1 requires it)", msg)
	}
	t.Skipf("%s; install it (Debian: apt-get install -y mosquitto-clients python3-paho-mqtt) or see .ci/run", msg)
}

// needProgram returns the path of an outside program, or skips the test (see
// missing) when it is not installed.
func needProgram(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found", name)
	}
	return path
}

// needPythonPaho returns Debian's python3 once it has checked that it can
// import Eclipse Paho.
func needPythonPaho(t *testing.T) string {
	t.Helper()
	py := needProgram(t, debianPython)
	out, err := exec.Command(py, "-c", "import paho.mqtt.client").CombinedOutput()
	if err != nil {
		missing(t, "%s cannot import paho.mqtt.client: %v: %s", py, err, bytes.TrimSpace(out))
	}
	return py
}

// runTool runs a program to completion (at most waitFor) and returns its
// stdout and stderr.
func runTool(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// tool is a running outside program whose stdout is read line by line.
type tool struct {
	name   string
	cmd    *exec.Cmd
	lines  chan string
	stderr bytes.Buffer
	cancel context.CancelFunc
}

// startTool starts a program that is killed when the test ends (or after
// twice waitFor).
func startTool(t *testing.T, name string, args ...string) *tool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	label := filepath.Base(name)
	if label == "stdbuf" && len(args) > 1 {
		label = filepath.Base(args[1])
	}
	p := &tool{name: label, lines: make(chan string, 64), cancel: cancel}
	p.cmd = exec.CommandContext(ctx, name, args...)
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		for range p.lines {
		}
		_ = p.cmd.Wait()
	})
	return p
}

// line returns the next stdout line that starts with prefix, skipping the
// others; it fails if the program ends first.
func (p *tool) line(t *testing.T, prefix string) string {
	t.Helper()
	for l := range p.lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
		t.Logf("%s: %s", p.name, l)
	}
	err := p.cmd.Wait()
	t.Fatalf("%s ended (%v) before printing %q; stderr: %s", p.name, err, prefix, p.stderr.String())
	return ""
}

// wait waits for the program to exit and returns the rest of its stdout.
func (p *tool) wait(t *testing.T) ([]string, error) {
	t.Helper()
	var rest []string
	for l := range p.lines {
		rest = append(rest, l)
	}
	return rest, p.cmd.Wait()
}

// mosqConn returns the mosquitto client options that reach a listener of s,
// trusting the server's certificate on TLS listeners.
func mosqConn(s *Server, listener string, port int) []string {
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port)}
	if strings.HasSuffix(listener, "-tls") {
		args = append(args, "--cafile", filepath.Join(s.cfg.DataDir, "tls", "cert.pem"))
	}
	return args
}

// mosqOnboard onboards a thing with mosquitto_rr (MQTT 5 request/response)
// on an onboarding listener and returns the answer.
func mosqOnboard(t *testing.T, s *Server, listener, vendorThingID, password string) onboardResult {
	t.Helper()
	rr := needProgram(t, "mosquitto_rr")
	args := append(mosqConn(s, listener, s.Port(listener)),
		"-V", "mqttv5", "-i", "anonymous",
		"-u", "type=oauth2&client_id="+testAppID, "-P", "client_secret="+testAppKey,
		"-t", onboardTopic, "-e", onboardTopic, "-N", "-W", "10",
		"-m", "POST\nContent-Type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n\n"+onboardingBody(vendorThingID, password))
	out, errOut, err := runTool(t, rr, args...)
	if err != nil || !strings.HasPrefix(out, "200\r\n") {
		t.Fatalf("mosquitto_rr onboarding: %v: stdout %q, stderr %q", err, out, errOut)
	}
	_, body, ok := strings.Cut(out, "\r\n\r\n")
	var ob onboardResult
	if err := json.Unmarshal([]byte(body), &ob); !ok || err != nil {
		t.Fatalf("mosquitto_rr onboarding answer %q: %v", out, err)
	}
	if ob.AccessToken == "" || !strings.HasPrefix(ob.ThingID, "th.") || ob.MQTTEndpoint.MQTTTopic == "" {
		t.Fatalf("mosquitto_rr onboarding answer %q lacks fields", out)
	}
	return ob
}

// mosqAPIArgs returns the mosquitto client options that connect a thing to
// the API broker listener port.
func mosqAPIArgs(s *Server, listener string, port int, ob onboardResult) []string {
	ep := ob.MQTTEndpoint
	return append(mosqConn(s, listener, port), "-i", ep.MQTTTopic, "-u", ep.Username, "-P", ep.Password)
}

// mosqCall makes an API call with mosquitto_rr on the API broker's TCP
// listener. mosquitto_rr subscribes to its response topic before it
// publishes, and a thing may subscribe to nothing but its mqttTopic, so that
// is the response topic it names; the answer comes back on the request
// topic all the same (PROTOCOL.md §3) and mosquitto_rr prints the first
// message it receives.
func mosqCall(t *testing.T, s *Server, ob onboardResult, method, path, contentType, body string) *codec.Response {
	t.Helper()
	rr := needProgram(t, "mosquitto_rr")
	req := method + "\nAuthorization: Bearer " + ob.AccessToken + "\n"
	if contentType != "" {
		req += "Content-Type: " + contentType + "\n"
	}
	req += "X-Kii-RequestID: mosq-1\n\n" + body
	args := append(mosqAPIArgs(s, "mqtt-tcp", ob.MQTTEndpoint.PortTCP, ob),
		"-V", "mqttv5", "-t", apiTopic(ob, path), "-e", ob.MQTTEndpoint.MQTTTopic, "-N", "-W", "10", "-m", req)
	out, errOut, err := runTool(t, rr, args...)
	if err != nil {
		t.Fatalf("mosquitto_rr %s %s: %v: stdout %q, stderr %q", method, path, err, out, errOut)
	}
	res, err := codec.ParseResponse([]byte(out))
	if err != nil {
		t.Fatalf("mosquitto_rr %s %s: answer %q (stderr %q): %v", method, path, out, errOut, err)
	}
	if got := res.Header.Get("X-Kii-RequestID"); got != "mosq-1" {
		t.Fatalf("mosquitto_rr %s %s: X-Kii-RequestID %q, want mosq-1", method, path, got)
	}
	return res
}

// TestMosquittoClients onboards with mosquitto_rr, receives a command sent
// over REST with mosquitto_sub, and reports results and a state with
// mosquitto_rr, over TCP and TLS and with MQTT 3.1 and 3.1.1 subscribers.
func TestMosquittoClients(t *testing.T) {
	needProgram(t, "mosquitto_rr")
	sub := needProgram(t, "mosquitto_sub")
	stdbuf := needProgram(t, "stdbuf")
	s := startServer(t, testConfig(t, t.TempDir()))
	admin := adminToken(t, s)
	tests := []struct {
		name, onboard, api, version string
	}{
		{"tcp/mqttv311", "onboard-tcp", "mqtt-tcp", "mqttv311"},
		{"tls/mqttv311", "onboard-tls", "mqtt-tls", "mqttv311"},
		{"tcp/mqttv31", "onboard-tcp", "mqtt-tcp", "mqttv31"},
		{"tls/mqttv31", "onboard-tls", "mqtt-tls", "mqttv31"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ob := mosqOnboard(t, s, tt.onboard, "vt-mosq-"+tt.name, "pw")
			ep := ob.MQTTEndpoint
			port := ep.PortTCP
			if tt.api == "mqtt-tls" {
				port = ep.PortSSL
			}
			if ep.Host != "127.0.0.1" || port != s.Port(tt.api) {
				t.Fatalf("mqttEndpoint %+v does not name %s", ep, tt.api)
			}

			// -d prints the SUBACK, after which the push can be sent;
			// -F prints each message as "MSG qos topic payload". stdbuf
			// makes the debug lines, which mosquitto_sub does not flush,
			// arrive as they are printed.
			p := startTool(t, stdbuf, append([]string{"-oL", sub}, append(mosqAPIArgs(s, tt.api, port, ob),
				"-V", tt.version, "-t", ep.MQTTTopic, "-q", "0", "-C", "1", "-W", "20", "-d",
				"-F", "MSG %q %t %p")...)...)
			p.line(t, "Subscribed (mid: 1): 0")
			cid := sendCommand(t, s, admin, ob.ThingID, `[{"turnPower":{"power":true}}]`)
			msg := p.line(t, "MSG ")
			if _, err := p.wait(t); err != nil {
				t.Fatalf("mosquitto_sub: %v; stderr %s", err, p.stderr.String())
			}
			f := strings.SplitN(msg, " ", 4)
			var cmd struct {
				CommandID string            `json:"commandID"`
				Actions   []json.RawMessage `json:"actions"`
			}
			if len(f) != 4 || f[1] != "0" || f[2] != ep.MQTTTopic || json.Unmarshal([]byte(f[3]), &cmd) != nil ||
				cmd.CommandID != cid || len(cmd.Actions) != 1 {
				t.Fatalf("mosquitto_sub got %q, want command %s at QoS 0 on %s", msg, cid, ep.MQTTTopic)
			}
			waitState(t, s, admin, ob.ThingID, cid, "DELIVERED")

			res := mosqCall(t, s, ob, "PUT", "targets/thing:"+ob.ThingID+"/commands/"+cid+"/action-results",
				"application/json", `{"actionResults":[{"turnPower":{"succeeded":true}}]}`)
			if res.StatusCode != 204 {
				t.Fatalf("action results: %d %s", res.StatusCode, res.Body)
			}
			if got := commandState(t, s, admin, ob.ThingID, cid); got != "DONE" {
				t.Fatalf("command state %s, want DONE", got)
			}
			state := `{"AirConditionerAlias":{"power":true,"presetTemperature":23}}`
			res = mosqCall(t, s, ob, "PUT", "targets/thing:"+ob.ThingID+"/states", "application/vnd.kii.MultipleTraitState+json", state)
			if res.StatusCode != 204 {
				t.Fatalf("state PUT: %d %s", res.StatusCode, res.Body)
			}
			res = mosqCall(t, s, ob, "GET", "targets/thing:"+ob.ThingID+"/states", "", "")
			var got map[string]map[string]any
			if res.StatusCode != 200 || json.Unmarshal(res.Body, &got) != nil ||
				got["AirConditionerAlias"]["power"] != true || got["AirConditionerAlias"]["presetTemperature"] != 23.0 {
				t.Fatalf("state GET: %d %s, want %s", res.StatusCode, res.Body, state)
			}
		})
	}
}

// TestPythonPahoThing runs testdata/thing.py, Kii's MQTT onboarding sample's
// flow written with Eclipse Paho for Python: onboard without SUBSCRIBE, take
// a command pushed after a REST call, answer its action results over MQTT.
func TestPythonPahoThing(t *testing.T) {
	py := needPythonPaho(t)
	s := startServer(t, testConfig(t, t.TempDir()))
	admin := adminToken(t, s)
	p := startTool(t, py, filepath.Join("testdata", "thing.py"), "127.0.0.1", strconv.Itoa(s.Port("onboard-tcp")),
		testAppID, testAppKey, "vt-python", "pw-python")
	ready := p.line(t, "READY")
	thingID := strings.TrimSpace(strings.TrimPrefix(ready, "READY"))
	if !strings.HasPrefix(thingID, "th.") {
		t.Fatalf("thing.py printed %q, want READY th.…", ready)
	}
	cid := sendCommand(t, s, admin, thingID, `[{"turnPower":{"power":true}},{"setFanSpeed":{"fanSpeed":5}}]`)
	rest, err := p.wait(t)
	if err != nil {
		t.Fatalf("thing.py: %v; stdout %q; stderr %s", err, rest, p.stderr.String())
	}
	if len(rest) == 0 || rest[len(rest)-1] != cid {
		t.Fatalf("thing.py printed %q, want the command ID %s last", rest, cid)
	}
	if got := commandState(t, s, admin, thingID, cid); got != "DONE" {
		t.Fatalf("command state %s, want DONE", got)
	}
}

// subackCode finds the SUBACK code in mosquitto_sub -d output.
var subackCode = regexp.MustCompile(`Subscribed \(mid: \d+\): (\d+)`)

// TestMosquittoIsolationProbe: with a thing's own credentials, mosquitto_sub
// cannot subscribe to wildcards, $SYS or another thing's mqttTopic: each
// SUBACK is a failure, and nothing is received.
func TestMosquittoIsolationProbe(t *testing.T) {
	sub := needProgram(t, "mosquitto_sub")
	s := startServer(t, testConfig(t, t.TempDir()))
	admin := adminToken(t, s)
	anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	prober := onboard(t, anon, "vt-prober", "pw")
	victim := onboard(t, anon, "vt-victim", "pw")
	anon.Close()
	vc, err := dialV3(t, brokerURL(s, "mqtt-tcp"), victim.MQTTEndpoint.MQTTTopic, victim.MQTTEndpoint.Username, victim.MQTTEndpoint.Password, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := vc.Subscribe(t, victim.MQTTEndpoint.MQTTTopic, 0); got != 0 {
		t.Fatalf("victim SUBACK %#x", got)
	}
	probes := []struct{ name, filter string }{
		{"hash", "#"}, {"plus", "+"}, {"requests", "p/#"}, {"sys", "$SYS/#"},
		{"other-thing", victim.MQTTEndpoint.MQTTTopic},
		{"other-thing-answers", "p/" + victim.MQTTEndpoint.MQTTTopic + "/#"},
	}
	for _, pr := range probes {
		for _, version := range []string{"mqttv31", "mqttv311", "mqttv5"} {
			filter := pr.filter
			t.Run(pr.name+"/"+version, func(t *testing.T) {
				// -d prints the SUBACK's code as "Subscribed (mid: 1): N".
				// mosquitto_sub then says "All subscription requests were
				// denied" and disconnects, with exit status 0 in 2.0: the
				// code is the signal, not the status.
				out, errOut, err := runTool(t, sub, append(mosqAPIArgs(s, "mqtt-tcp", prober.MQTTEndpoint.PortTCP, prober),
					"-V", version, "-t", filter, "-C", "1", "-W", "10", "-F", "MSG %t %p", "-d")...)
				var exit *exec.ExitError
				if err != nil && !errors.As(err, &exit) {
					t.Fatalf("mosquitto_sub: %v", err)
				}
				m := subackCode.FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no SUBACK (%v): stdout %q, stderr %q", err, out, errOut)
				}
				if code, _ := strconv.Atoi(m[1]); code < 0x80 {
					t.Fatalf("subscription to %q granted (code %d): stdout %q", filter, code, out)
				}
				if !strings.Contains(errOut, "denied") {
					t.Fatalf("mosquitto_sub did not report the refusal: stderr %q", errOut)
				}
				if strings.Contains(out, "MSG ") || strings.Contains(out, "received PUBLISH") {
					t.Fatalf("subscription to %q received %q", filter, out)
				}
			})
		}
	}
	// The victim still gets its own command, and only it.
	cid := sendCommand(t, s, admin, victim.ThingID, `[{"turnPower":{"power":true}}]`)
	if m := await(t, vc, victim.MQTTEndpoint.MQTTTopic); !strings.Contains(string(m.Payload), cid) {
		t.Fatalf("victim got %q, want command %s", m.Payload, cid)
	}
}
