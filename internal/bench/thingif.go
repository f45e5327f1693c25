package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingif/thingif/codec"
)

var currentPID = os.Getpid()

// Thing is an onboarded thing's credentials.
type Thing struct {
	ThingID  string `json:"thingID"`
	Token    string `json:"accessToken"`
	Topic    string `json:"mqttTopic"`
	Username string `json:"username"`
	Password string `json:"password"`
	// Port, PortTLS, PortWS and PortWSS are the API broker's ports from
	// the onboarding answer.
	Port    int `json:"portTCP"`
	PortTLS int `json:"portSSL,omitempty"`
	PortWS  int `json:"portWS,omitempty"`
	PortWSS int `json:"portWSS,omitempty"`
}

const ctOnboardByThing = "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"

// onboarder is one connection to the onboarding broker.
type onboarder struct {
	c     *conn
	topic string
}

func (r *run) newOnboarder(ctx context.Context, i int) (*onboarder, error) {
	c, err := r.dial.dialOver(ctx, "tcp", i, r.cfg.Onboard, "anonymous", "type=oauth2&client_id="+r.cfg.AppID, "client_secret="+r.cfg.AppKey)
	if err != nil {
		return nil, fmt.Errorf("onboarding broker: %w", err)
	}
	return &onboarder{c: c, topic: "p/anonymous/thing-if/apps/" + r.cfg.AppID + "/onboardings"}, nil
}

// onboard onboards one new thing and waits for the answer.
func (o *onboarder) onboard(vendorThingID string, timeout time.Duration) (Thing, error) {
	body := fmt.Appendf(nil, `{"vendorThingID":%q,"thingPassword":"bench-pw"}`, vendorThingID)
	req := codec.AppendRequest(nil, "POST", http.Header{"Content-Type": {ctOnboardByThing}}, body)
	if err := o.c.publish(o.topic, 0, req); err != nil {
		return Thing{}, err
	}
	_ = o.c.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		first, payload, err := o.c.readPacket()
		if err != nil {
			return Thing{}, fmt.Errorf("onboarding answer: %w", err)
		}
		if first>>4 != pktPublish {
			continue
		}
		tl := int(payload[0])<<8 | int(payload[1])
		res, err := codec.ParseResponse(payload[2+tl:])
		if err != nil {
			return Thing{}, fmt.Errorf("onboarding answer: %w", err)
		}
		if res.StatusCode != 200 {
			return Thing{}, fmt.Errorf("onboarding answer: %d %s", res.StatusCode, res.Body)
		}
		var a struct {
			ThingID     string `json:"thingID"`
			AccessToken string `json:"accessToken"`
			Endpoint    struct {
				Username, Password, MQTTTopic     string
				PortTCP, PortSSL, PortWS, PortWSS int
			} `json:"mqttEndpoint"`
		}
		if err := json.Unmarshal(res.Body, &a); err != nil {
			return Thing{}, fmt.Errorf("onboarding answer: %w", err)
		}
		return Thing{ThingID: a.ThingID, Token: a.AccessToken, Topic: a.Endpoint.MQTTTopic,
			Username: a.Endpoint.Username, Password: a.Endpoint.Password, Port: a.Endpoint.PortTCP,
			PortTLS: a.Endpoint.PortSSL, PortWS: a.Endpoint.PortWS, PortWSS: a.Endpoint.PortWSS}, nil
	}
}

// onboardMany onboards n new things, Concurrency at a time, each worker on
// its own onboarding-broker connection.
func (r *run) onboardMany(ctx context.Context, n int, lat *latencies, bar *progress) ([]Thing, error) {
	workers := r.cfg.Concurrency
	if workers == 0 {
		workers = 16
	}
	workers = min(workers, n)
	things := make([]Thing, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := r.newOnboarder(ctx, w)
			if err != nil {
				errs <- err
				return
			}
			defer o.c.close()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				t, err := o.onboard(fmt.Sprintf("bench-%d-%d", r.id, i), r.cfg.Timeout)
				if err != nil {
					errs <- err
					return
				}
				lat.add(time.Since(t0))
				things[i] = t
				bar.add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return things, ctx.Err()
}

// things returns n onboarded things: from ThingsFile as far as it has them,
// the rest onboarded now (and added to the file).
func (r *run) things(ctx context.Context, n int) ([]Thing, error) {
	var kept []Thing
	if r.cfg.ThingsFile != "" {
		if b, err := os.ReadFile(r.cfg.ThingsFile); err == nil {
			if err := json.Unmarshal(b, &kept); err != nil {
				return nil, fmt.Errorf("things file: %w", err)
			}
		}
	}
	if len(kept) >= n {
		return kept[:n], nil
	}
	bar := startProgress(r.cfg.Progress, "onboard", n-len(kept))
	more, err := r.onboardMany(ctx, n-len(kept), new(latencies), bar)
	bar.end()
	if err != nil {
		return nil, err
	}
	kept = append(kept, more...)
	if r.cfg.ThingsFile != "" {
		b, _ := json.Marshal(kept)
		if err := os.WriteFile(r.cfg.ThingsFile, b, 0o600); err != nil {
			return nil, fmt.Errorf("things file: %w", err)
		}
	}
	return kept, nil
}

// apiAddr returns the API broker's address.
func (r *run) apiAddr(t Thing) string {
	if r.cfg.MQTT != "" {
		return r.cfg.MQTT
	}
	host, _, _ := net.SplitHostPort(r.cfg.Onboard)
	port := t.Port
	switch r.cfg.Transport {
	case "tls":
		port = t.PortTLS
	case "ws":
		port = t.PortWS
	case "wss":
		port = t.PortWSS
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func (r *run) onboard(ctx context.Context, res *Result) error {
	n := r.cfg.N
	res.Params["N"], res.Params["C"] = n, max(1, min(n, cmpOr(r.cfg.Concurrency, 16)))
	lat := new(latencies)
	m := r.startMeasure()
	bar := startProgress(r.cfg.Progress, "onboard", n)
	_, err := r.onboardMany(ctx, n, lat, bar)
	bar.end()
	if err != nil {
		return err
	}
	el := m.end(res)
	res.Metrics = append([]Metric{{"onboardings/s", float64(n) / el.Seconds(), "/s"}}, res.Metrics...)
	res.addLatencies("onboarding latency", lat)
	return nil
}

// reonboard onboards N new things, then onboards the same things again
// with their right passwords, as a fleet does after a power cut (Kii's
// embedded SDK onboards at every boot). Both phases are reported: the
// first registrations (one argon2id hash each) and the re-onboardings of
// known things (answered from the server's cache of recent successes).
func (r *run) reonboard(ctx context.Context, res *Result) error {
	n := r.cfg.N
	res.Params["N"], res.Params["C"] = n, max(1, min(n, cmpOr(r.cfg.Concurrency, 16)))
	first := new(latencies)
	t0 := time.Now()
	bar := startProgress(r.cfg.Progress, "onboard", n)
	_, err := r.onboardMany(ctx, n, first, bar)
	bar.end()
	if err != nil {
		return err
	}
	firstRate := float64(n) / time.Since(t0).Seconds()

	lat := new(latencies)
	m := r.startMeasure()
	bar = startProgress(r.cfg.Progress, "re-onboard", n)
	_, err = r.onboardMany(ctx, n, lat, bar)
	bar.end()
	if err != nil {
		return err
	}
	el := m.end(res)
	res.Metrics = append([]Metric{
		{"re-onboardings/s", float64(n) / el.Seconds(), "/s"},
		{"first onboardings/s", firstRate, "/s"},
	}, res.Metrics...)
	res.addLatencies("re-onboarding latency", lat)
	res.addLatencies("first onboarding latency", first)
	return nil
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// connThings connects and subscribes every thing, Concurrency at a time
// (paced to Rate when set), with a "connect" progress bar, and returns the
// connections in thing order.
func (r *run) connThings(ctx context.Context, things []Thing, lat *latencies) ([]*conn, error) {
	bar := startProgress(r.cfg.Progress, "connect", len(things))
	defer bar.end()
	conns := make([]*conn, len(things))
	workers := min(cmpOr(r.cfg.Concurrency, 64), len(things))
	jobs := make(chan int, workers)
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t := things[i]
				t0 := time.Now()
				c, err := r.dial.dial(cctx, i, r.apiAddr(t), t.Topic, t.Username, t.Password)
				if err == nil {
					err = c.subscribe(t.Topic, 1, r.cfg.Timeout)
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("connect thing %d: %w", i, err); cancel() })
					continue
				}
				lat.add(time.Since(t0))
				conns[i] = c
				bar.add(1)
			}
		}()
	}
	if r.cfg.Rate > 0 && r.cfg.Scenario == "connect" {
		pace(cctx.Done(), r.cfg.Rate, len(things), func(i int, _ time.Time) { jobs <- i })
	} else {
		for i := range things {
			if cctx.Err() != nil {
				break
			}
			jobs <- i
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		closeAll(conns)
		return nil, firstErr
	}
	return conns, nil
}

func closeAll(cs []*conn) {
	for _, c := range cs {
		if c != nil {
			c.close()
		}
	}
}

func (r *run) connect(ctx context.Context, res *Result) error {
	n := r.cfg.N
	res.Params["N"], res.Params["sources"], res.Params["hold"] = n, r.cfg.Sources, r.cfg.Hold.String()
	res.Params["transport"] = cmp.Or(r.cfg.Transport, "tcp")
	res.Params["rate"] = r.cfg.Rate
	var things []Thing
	if r.cfg.Broker == "" {
		var err error
		if things, err = r.things(ctx, n); err != nil {
			return err
		}
	} else {
		things = make([]Thing, n)
		for i := range things {
			id := fmt.Sprintf("b%d-%d", r.id, i)
			things[i] = Thing{Topic: id}
		}
		r.cfg.MQTT = r.cfg.Broker
	}
	if r.cfg.MQTT == "" {
		for _, t := range things {
			if _, port, _ := net.SplitHostPort(r.apiAddr(t)); port == "0" {
				return fmt.Errorf("thing %s: its onboarding answer named no %s port of the API broker (things kept from a server without that listener?); give --mqtt", t.ThingID, r.cfg.Transport)
			}
		}
	}
	var before, after int64
	var mb, ma map[string]float64
	if r.cfg.PID > 0 {
		time.Sleep(time.Second) // let the onboarding's garbage settle
		before, _ = rss(r.cfg.PID)
		mb = r.scrape()
	}
	lat := new(latencies)
	m := r.startMeasure()
	conns, err := r.connThings(ctx, things, lat)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	el := time.Since(m.start)
	res.add("connects/s (CONNECT+SUBSCRIBE)", float64(n)/el.Seconds(), "/s")
	res.addLatencies("connect latency", lat)
	m.end(res)
	select {
	case <-time.After(r.cfg.Hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.cfg.PID > 0 {
		after, _ = rss(r.cfg.PID)
		ma = r.scrape()
		res.add("server RSS before", float64(before)/(1<<20), "MiB")
		res.add("server RSS after", float64(after)/(1<<20), "MiB")
		res.add("server RSS per connection", float64(after-before)/float64(n)/1024, "KiB")
		if r.cfg.PID == currentPID {
			res.Notes = append(res.Notes, "RSS is of the bench process itself (--embedded): it includes the load generator's side of every connection")
		}
		for _, k := range []struct{ metric, name string }{
			{"go_memstats_heap_inuse_bytes", "server Go heap in use per connection"},
			{"go_memstats_stack_inuse_bytes", "server goroutine stacks per connection"},
		} {
			if b, ok := mb[k.metric]; ok {
				if a, ok := ma[k.metric]; ok {
					res.add(k.name, (a-b)/float64(n)/1024, "KiB")
				}
			}
		}
		if b, ok := mb["go_goroutines"]; ok {
			if a, ok := ma["go_goroutines"]; ok {
				res.add("server goroutines per connection", (a-b)/float64(n), "")
			}
		}
	}
	return nil
}

// scrape reads the server's /metrics (unlabelled samples only), or nil.
func (r *run) scrape() map[string]float64 {
	if r.cfg.REST == "" || r.cfg.Broker != "" {
		return nil
	}
	resp, err := http.Get(r.cfg.REST + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	for line := range bytes.Lines(buf.Bytes()) {
		f := bytes.Fields(line)
		if len(f) != 2 || f[0][0] == '#' || bytes.ContainsRune(f[0], '{') {
			continue
		}
		if v, err := strconv.ParseFloat(string(f[1]), 64); err == nil {
			out[string(f[0])] = v
		}
	}
	return out
}

// adminToken gets an app admin token from the token endpoint of the REST
// API at base.
func (r *run) adminToken(ctx context.Context, hc *http.Client, base string) (string, error) {
	body, _ := json.Marshal(map[string]string{"grant_type": "client_credentials", "client_id": r.cfg.AppID, "client_secret": r.cfg.AppKey})
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/api/apps/"+r.cfg.AppID+"/oauth2/token", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token: status %d, %v", resp.StatusCode, err)
	}
	return tok.AccessToken, nil
}

// push: K things subscribed at QoS 1; commands sent over REST at Rate for
// Duration, round robin; each thing answers with its action results over
// MQTT unless NoAnswer. With RESTNodes, each thing's commands go to the
// node CommandNode picks for it.
func (r *run) push(ctx context.Context, res *Result) error {
	k, n := r.cfg.K, int(r.cfg.Rate*r.cfg.Duration.Seconds())
	workers := cmpOr(r.cfg.Concurrency, 64)
	res.Params["K"], res.Params["rate"], res.Params["duration"], res.Params["commands"] = k, r.cfg.Rate, r.cfg.Duration.String(), n
	res.Params["answer"] = !r.cfg.NoAnswer
	things, err := r.things(ctx, k)
	if err != nil {
		return err
	}
	conns, err := r.connThings(ctx, things, new(latencies))
	if err != nil {
		return err
	}
	defer closeAll(conns)

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}, Timeout: r.cfg.Timeout}
	defer hc.CloseIdleConnections()
	base := r.cfg.REST
	if len(r.cfg.RESTNodes) > 0 {
		base = r.cfg.RESTNodes[0]
	}
	token, err := r.adminToken(ctx, hc, base)
	if err != nil {
		return err
	}
	urls := make([]string, k)
	for i := range urls {
		urls[i] = base
	}
	if len(r.cfg.RESTNodes) > 0 {
		nodes, err := r.restNodes(ctx, hc, token)
		if err != nil {
			return err
		}
		if urls, err = commandURLs(things, nodes, r.cfg.CommandNode); err != nil {
			return err
		}
		res.Params["nodes"], res.Params["command node"] = len(nodes), r.cfg.CommandNode
		res.Notes = append(res.Notes, placement(things, nodes))
	}

	// A command's title is b<run>-<seq>: commands of an earlier run
	// against the same things, still pending when it ended (a server
	// that fell behind), are pushed when the things connect again, and
	// must not count as this run's.
	titleKey := fmt.Sprintf(`"title":"b%d-`, r.id)
	due := make([]time.Time, n)
	var pushed, done, accepted, refused atomic.Int64
	seen := make([]atomic.Bool, n)
	pushLat, doneLat, restLat := new(latencies), new(latencies), new(latencies)
	var lastPush atomic.Int64
	allPushed := make(chan struct{})
	allDone := make(chan struct{})
	var readers sync.WaitGroup
	for i, c := range conns {
		t := things[i]
		reqTopic := "p/" + t.Topic + "/thing-if/apps/" + r.cfg.AppID + "/targets/thing:" + t.ThingID + "/commands/"
		readers.Add(1)
		go func() {
			defer readers.Done()
			_ = c.readLoop(func(topic string, p []byte) {
				now := time.Now()
				if topic == t.Topic {
					seq, ok := jsonInt(p, titleKey)
					if !ok || seq < 0 || seq >= n || seen[seq].Swap(true) {
						return
					}
					pushLat.add(now.Sub(due[seq]))
					lastPush.Store(now.UnixNano())
					if pushed.Add(1) == int64(n) {
						close(allPushed)
					}
					if r.cfg.NoAnswer {
						return
					}
					id := jsonString(p, `"commandID":"`)
					body := []byte(`{"actionResults":[{"turnPower":{"succeeded":true}}]}`)
					h := http.Header{"Content-Type": {"application/json"}, "X-Kii-RequestID": {strconv.Itoa(seq)}}
					_ = c.publish(reqTopic+id+"/action-results", 0, codec.AppendRequest(nil, "PUT", h, body))
					return
				}
				// An answer to action results.
				if len(p) < 3 || string(p[:3]) != "204" {
					return
				}
				i := bytes.Index(p, []byte("X-Kii-RequestID:"))
				if i < 0 {
					return
				}
				v := bytes.TrimSpace(p[i+len("X-Kii-RequestID:"):])
				if j := bytes.IndexByte(v, '\r'); j >= 0 {
					v = v[:j]
				}
				if seq, err := strconv.Atoi(string(bytes.TrimSpace(v))); err == nil && seq >= 0 && seq < n {
					doneLat.add(now.Sub(due[seq]))
					if done.Add(1) == int64(n) {
						close(allDone)
					}
				}
			})
		}()
	}

	jobs := make(chan int, n)
	var workersWG sync.WaitGroup
	path := "/thing-if/apps/" + r.cfg.AppID + "/targets/thing:"
	for range workers {
		workersWG.Add(1)
		go func() {
			defer workersWG.Done()
			for seq := range jobs {
				t, base := things[seq%k], urls[seq%k]
				body := fmt.Appendf(nil, `{"schema":"bench","schemaVersion":1,"issuer":"user:bench","title":"b%d-%d","actions":[{"turnPower":{"power":true}}]}`, r.id, seq)
				req, _ := http.NewRequestWithContext(ctx, "POST", base+path+t.ThingID+"/commands", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := hc.Do(req)
				if err != nil {
					refused.Add(1)
					continue
				}
				_, _ = drain(resp)
				if resp.StatusCode == 201 {
					accepted.Add(1)
					restLat.add(time.Since(due[seq]))
				} else {
					refused.Add(1)
				}
			}
		}()
	}

	m := r.startMeasure()
	bar := startProgress(r.cfg.Progress, "push", n)
	pace(ctx.Done(), r.cfg.Rate, n, func(i int, d time.Time) {
		due[i] = d
		jobs <- i
		bar.add(1)
	})
	close(jobs)
	workersWG.Wait()
	bar.end()
	grace, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	select {
	case <-allPushed:
	case <-grace.Done():
	}
	if !r.cfg.NoAnswer {
		select {
		case <-allDone:
		case <-grace.Done():
		}
	}
	el := time.Duration(lastPush.Load() - m.start.UnixNano())
	m.end(res)
	closeAll(conns)
	readers.Wait()

	res.Metrics = append([]Metric{
		{"commands sent", float64(n), ""},
		{"REST accepted (201)", float64(accepted.Load()), ""},
		{"REST refused or failed", float64(refused.Load()), ""},
		{"pushes received", float64(pushed.Load()), ""},
		{"delivered/s", float64(pushed.Load()) / max(el.Seconds(), 1e-9), "/s"},
	}, res.Metrics...)
	res.addLatencies("REST due→201", restLat)
	res.addLatencies("push due→thing received", pushLat)
	if !r.cfg.NoAnswer {
		res.add("action results answered (DONE)", float64(done.Load()), "")
		res.addLatencies("full loop due→DONE answered", doneLat)
	}
	res.Notes = append(res.Notes, "latencies count from the time each command was due (open loop at the given rate), so they include any queueing in the generator; the push latency is REST request → thing received, an upper bound of REST-accepted → thing received")
	return nil
}

func drain(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	var b [512]byte
	var n int64
	for {
		k, err := resp.Body.Read(b[:])
		n += int64(k)
		if err != nil {
			return n, nil
		}
	}
}

// jsonInt finds key (e.g. `"title":"b`) in p and parses the digits after it.
func jsonInt(p []byte, key string) (int, bool) {
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return 0, false
	}
	i += len(key)
	j := i
	for j < len(p) && p[j] >= '0' && p[j] <= '9' {
		j++
	}
	v, err := strconv.Atoi(string(p[i:j]))
	return v, err == nil
}

// jsonString returns the string after key (which ends with the opening
// quote), up to the closing quote.
func jsonString(p []byte, key string) string {
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return ""
	}
	i += len(key)
	j := bytes.IndexByte(p[i:], '"')
	if j < 0 {
		return ""
	}
	return string(p[i : i+j])
}

// state: K things upload states over MQTT (PUT …/states, QoS 1), each
// sending the next upload as soon as the answer to the last arrives.
func (r *run) state(ctx context.Context, res *Result) error {
	k := r.cfg.K
	res.Params["K"], res.Params["duration"] = k, r.cfg.Duration.String()
	things, err := r.things(ctx, k)
	if err != nil {
		return err
	}
	conns, err := r.connThings(ctx, things, new(latencies))
	if err != nil {
		return err
	}
	defer closeAll(conns)
	h := http.Header{"Content-Type": {"application/json"}}
	lat := new(latencies)
	var failed atomic.Int64
	m := r.startMeasure()
	deadline := m.start.Add(r.cfg.Duration)
	bar := startProgress(r.cfg.Progress, "state", 0)
	var wg sync.WaitGroup
	// A thing whose answer never comes would hold the run: end every
	// connection a while after the deadline.
	watchdog := time.AfterFunc(r.cfg.Duration+r.cfg.Timeout, func() { closeAll(conns) })
	defer watchdog.Stop()
	for i, c := range conns {
		t := things[i]
		topic := "p/" + t.Topic + "/thing-if/apps/" + r.cfg.AppID + "/targets/thing:" + t.ThingID + "/states"
		var sent time.Time
		seq := 0
		send := func() error {
			seq++
			sent = time.Now()
			return c.publish(topic, 1, codec.AppendRequest(nil, "PUT", h, fmt.Appendf(nil, `{"power":true,"presetTemperature":%d,"seq":%d}`, seq%30, seq)))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.readLoop(func(topic string, p []byte) {
				now := time.Now()
				if len(p) < 3 || string(p[:3]) != "204" {
					failed.Add(1)
				} else {
					lat.add(now.Sub(sent))
					bar.add(1)
				}
				if now.Before(deadline) && ctx.Err() == nil {
					if send() != nil {
						c.close()
					}
					return
				}
				c.close()
			})
		}()
		if err := send(); err != nil {
			return err
		}
	}
	wg.Wait()
	bar.end()
	el := m.end(res)
	res.Metrics = append([]Metric{
		{"uploads/s", float64(lat.count()) / el.Seconds(), "/s"},
		{"uploads answered 204", float64(lat.count()), ""},
		{"uploads answered otherwise", float64(failed.Load()), ""},
	}, res.Metrics...)
	res.addLatencies("upload round trip", lat)
	return nil
}
