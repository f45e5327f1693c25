package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// child is a `thingif serve` process.
type child struct {
	cmd   *exec.Cmd
	addrs map[string]string // listener name → host:port
	logs  *bytes.Buffer
	mu    *sync.Mutex
}

// buildThingif builds the real binary once per test.
func buildThingif(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "thingif")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/thingif").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var readyAddr = regexp.MustCompile(`([a-z-]+)=(127\.0\.0\.1:\d+)`)

// startChild runs `thingif serve` on dir with every listener on a free
// loopback port and waits for its ready line.
func startChild(t *testing.T, bin, dir string, extra ...string) *child {
	t.Helper()
	args := []string{"serve", "--data", dir, "--public-host", "127.0.0.1", "--app", testAppID + ":" + testAppKey,
		"--password-hash-memory", "64", "--password-hash-time", "1"}
	for _, f := range []string{"onboard-tcp", "onboard-tls", "onboard-ws", "onboard-wss", "mqtt-tcp", "mqtt-tls", "mqtt-ws", "mqtt-wss", "http", "https"} {
		args = append(args, "--"+f, "127.0.0.1:0")
	}
	c := &child{cmd: exec.Command(bin, append(args, extra...)...), logs: new(bytes.Buffer), mu: new(sync.Mutex)}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.logs.WriteString(line + "\n")
			c.mu.Unlock()
			if strings.Contains(line, "thingif ready") {
				select {
				case ready <- line:
				default:
				}
			}
		}
	}()
	select {
	case line := <-ready:
		c.addrs = make(map[string]string)
		for _, m := range readyAddr.FindAllStringSubmatch(line, -1) {
			c.addrs[m[1]] = m[2]
		}
	case <-time.After(waitFor):
		t.Fatalf("no ready line; logs:\n%s", c.log())
	}
	return c
}

func (c *child) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

// do sends a REST request to the child and returns the status and body.
func (c *child) do(hc *http.Client, method, path, token, contentType, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+c.addrs["http"]+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// TestCrashSafety kills a real `thingif serve` with SIGKILL in the middle of
// a stream of commands and state uploads over REST, restarts it on the same
// data directory, and checks that every command answered 2xx is delivered
// to its thing and every state answered 2xx is readable.
//
// It runs the full size, 5,000 of each (about 10 s on 2 shared
// cores with -race); THINGIF_CRASH_N changes it.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	n := 5000
	if v := os.Getenv("THINGIF_CRASH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("THINGIF_CRASH_N: %v", err)
		}
	}
	const things, workers = 10, 16
	bin := buildThingif(t)
	dir := t.TempDir()
	srv := startChild(t, bin, dir)
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}

	status, b, err := srv.do(hc, "POST", "/api/apps/"+testAppID+"/oauth2/token", "", "application/json",
		fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":%q}`, testAppID, testAppKey))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err != nil || status != 200 || json.Unmarshal(b, &tok) != nil {
		t.Fatalf("admin token: %d %v %s", status, err, b)
	}
	admin := tok.AccessToken
	obs := make([]onboardResult, things)
	for i := range obs {
		status, b, err := srv.do(hc, "POST", "/thing-if/apps/"+testAppID+"/onboardings", admin, ctVTID, onboardingBody(fmt.Sprint("crash-", i), "pw"))
		if err != nil || status != 200 || json.Unmarshal(b, &obs[i]) != nil {
			t.Fatalf("onboard: %d %v %s", status, err, b)
		}
	}

	// The stream: job i sends command i to thing i%things, and uploads state
	// alias "s{i}" of that thing with a PATCH.
	var (
		mu          sync.Mutex
		ackedCmds   = make([]map[string]bool, things)
		ackedStates = make([]map[string]bool, things)
		acked       atomic.Int64
		started     atomic.Int64
		answered    atomic.Int64
		killed      atomic.Bool
	)
	for i := range things {
		ackedCmds[i], ackedStates[i] = make(map[string]bool), make(map[string]bool)
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				th := i / 2 % things
				ob := obs[th]
				var status int
				var body []byte
				var err error
				started.Add(1)
				if i%2 == 0 {
					status, body, err = srv.do(hc, "POST", "/thing-if/apps/"+testAppID+"/targets/thing:"+ob.ThingID+"/commands", admin, "application/json",
						fmt.Sprintf(`{"schema":"S","schemaVersion":1,"issuer":"user:u","actions":[{"n":{"i":%d}}]}`, i/2))
				} else {
					status, body, err = srv.do(hc, "PATCH", "/thing-if/apps/"+testAppID+"/targets/thing:"+ob.ThingID+"/states", ob.AccessToken,
						"application/vnd.kii.MultipleTraitStatePatch+json", fmt.Sprintf(`{"s%d":{"i":%d}}`, i/2, i/2))
				}
				if err != nil {
					continue // no answer: in flight when the server died
				}
				answered.Add(1)
				if status/100 != 2 {
					if !killed.Load() {
						t.Errorf("job %d: status %d %s", i, status, body)
					}
					continue
				}
				mu.Lock()
				if i%2 == 0 {
					var out struct {
						CommandID string `json:"commandID"`
					}
					if json.Unmarshal(body, &out) != nil || out.CommandID == "" {
						t.Errorf("command answer %s", body)
					}
					ackedCmds[th][out.CommandID] = true
				} else {
					ackedStates[th][fmt.Sprint("s", i/2)] = true
				}
				mu.Unlock()
				acked.Add(1)
			}
		}()
	}
	// Kill in the middle: once half of the 2n requests are acknowledged.
	go func() {
		for acked.Load() < int64(n) {
			time.Sleep(time.Millisecond)
		}
		killed.Store(true)
		srv.cmd.Process.Signal(syscall.SIGKILL)
	}()
	for i := 0; i < 2*n && !killed.Load(); i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if !killed.Load() {
		t.Fatal("the stream ended before the kill")
	}
	srv.cmd.Wait()
	inFlight := started.Load() - answered.Load()
	t.Logf("SIGKILL after %d of %d requests were sent: %d acknowledged, %d in flight (sent, never answered)",
		started.Load(), 2*n, acked.Load(), inFlight)

	// Restart on the same data directory.
	srv = startChild(t, bin, dir)
	var nStates, nCmds int
	for th, ob := range obs {
		status, b, err := srv.do(hc, "GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+ob.ThingID+"/states", ob.AccessToken, "", "")
		if err != nil || (status != 200 && len(ackedStates[th]) > 0) {
			t.Fatalf("read states: %d %v %s", status, err, b)
		}
		var got map[string]json.RawMessage
		_ = json.Unmarshal(b, &got)
		for alias := range ackedStates[th] {
			if _, ok := got[alias]; !ok {
				t.Errorf("thing %d: acknowledged state %s lost", th, alias)
			}
		}
		nStates += len(ackedStates[th])

		ep := ob.MQTTEndpoint
		c, err := dialV3(t, "tcp://"+srv.addrs["mqtt-tcp"], ep.MQTTTopic, ep.Username, ep.Password, 4, nil)
		if err != nil {
			t.Fatalf("thing %d connect after restart: %v", th, err)
		}
		c.Subscribe(t, ep.MQTTTopic, 0)
		want := len(ackedCmds[th])
		seen := make(map[string]bool)
		for len(seen) < want || !subset(ackedCmds[th], seen) {
			m := await(t, c, ep.MQTTTopic)
			var p struct {
				CommandID string `json:"commandID"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatalf("push %s", m.Payload)
			}
			seen[p.CommandID] = true
		}
		c.Close()
		nCmds += want
	}
	t.Logf("after restart: %d acknowledged states readable, %d acknowledged commands delivered", nStates, nCmds)
	if t.Failed() {
		t.Logf("logs:\n%s", srv.log())
	}
}

// subset reports whether every key of a is in b.
func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
