package thing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/thingif/thingif/thing"
)

func TestOnboard(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	cfg := s.thingConfig(t, "vt-onboard")
	cfg.ThingType, cfg.FirmwareVersion, cfg.LayoutPosition = "AirConditioner", "1.0", "STANDALONE"
	cfg.ThingProperties = map[string]any{"room": "kitchen"}
	cfg.DataGroupingInterval = "15_MINUTES"
	first, err := thing.Onboard(ctx, cfg)
	if err != nil {
		t.Fatalf("Onboard: %v", err)
	}
	ep := first.Endpoint
	if !strings.HasPrefix(first.ThingID, "th.") || first.AccessToken == "" || ep.MQTTTopic == "" || ep.Username == "" ||
		ep.Password == "" || ep.Host != "127.0.0.1" || ep.PortTCP != s.Port("mqtt-tcp") || ep.PortWSS != s.Port("mqtt-wss") || ep.TTL <= 0 {
		t.Fatalf("credentials %+v", first)
	}
	admin := s.adminToken(t)
	var fw struct{ FirmwareVersion string }
	if st := s.rest(t, "GET", "/thing-if/apps/"+testAppID+"/things/"+first.ThingID+"/firmware-version", admin, "", &fw); st != 200 || fw.FirmwareVersion != "1.0" {
		t.Fatalf("firmware version after onboarding: %d %+v", st, fw)
	}

	t.Run("by thing ID", func(t *testing.T) {
		c := cfg
		c.VendorThingID, c.ThingID = "", first.ThingID
		again, err := thing.Onboard(ctx, c)
		if err != nil {
			t.Fatalf("Onboard: %v", err)
		}
		if again.ThingID != first.ThingID || again.Endpoint.InstallationID == first.Endpoint.InstallationID {
			t.Fatalf("second onboarding: thing %s installation %s; first: %s %s", again.ThingID,
				again.Endpoint.InstallationID, first.ThingID, first.Endpoint.InstallationID)
		}
	})

	for _, tc := range []struct {
		name   string
		change func(*thing.Config)
		status int
		code   string
	}{
		{"wrong password", func(c *thing.Config) { c.Password = "wrong" }, 403, "WRONG_PASSWORD"},
		{"unknown thing ID", func(c *thing.Config) { c.VendorThingID, c.ThingID = "", "th.nope" }, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.change(&c)
			_, err := thing.Onboard(ctx, c)
			var e *thing.Error
			if !errors.As(err, &e) {
				t.Fatalf("Onboard: %v, want a *thing.Error", err)
			}
			if tc.status != 0 && (e.StatusCode != tc.status || e.ErrorCode != tc.code) {
				t.Fatalf("Onboard: %d %s, want %d %s", e.StatusCode, e.ErrorCode, tc.status, tc.code)
			}
			t.Logf("error: %v", err)
		})
	}

	t.Run("wrong app key", func(t *testing.T) {
		c := cfg
		c.AppKey = "wrong"
		if _, err := thing.Onboard(ctx, c); !errors.Is(err, thing.ErrRefused) {
			t.Fatalf("Onboard: %v, want ErrRefused", err)
		}
	})
	t.Run("unknown app", func(t *testing.T) {
		c := cfg
		c.AppID = "nope"
		if _, err := thing.Onboard(ctx, c); !errors.Is(err, thing.ErrRefused) {
			t.Fatalf("Onboard: %v, want ErrRefused", err)
		}
	})
	t.Run("client stops on a refused onboarding", func(t *testing.T) {
		c := cfg
		c.Password = "wrong"
		cl, err := thing.NewClient(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		err = cl.AwaitConnection(ctx)
		var e *thing.Error
		if !errors.Is(err, thing.ErrClosed) || !errors.As(err, &e) || e.ErrorCode != "WRONG_PASSWORD" {
			t.Fatalf("AwaitConnection: %v, want ErrClosed with WRONG_PASSWORD", err)
		}
		<-cl.Done()
		if !errors.As(cl.Err(), &e) {
			t.Fatalf("Err: %v", cl.Err())
		}
	})
}

// TestCommandRoundTrip sends commands over REST and sees them handled,
// their results stored and the state uploaded, on every transport.
func TestCommandRoundTrip(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	admin := s.adminToken(t)
	for _, tr := range []string{"tcp", "tls", "ws", "wss"} {
		t.Run(tr, func(t *testing.T) {
			rec := newRecorder(true)
			cfg := s.thingConfig(t, "vt-rt-"+tr)
			cfg.Server = s.url(tr)
			cfg.OnCommand = rec.handle
			c := startClient(t, cfg)
			id := c.ThingID()

			cid := s.sendCommand(t, admin, id, v1Command)
			cmd := rec.await(t)
			want := []thing.Action{
				{Name: "turnPower", Params: json.RawMessage(`{"power":true}`)},
				{Name: "setFanSpeed", Params: json.RawMessage(`{"fanSpeed":5}`)},
			}
			if cmd.ID != cid || cmd.Schema != "HelloThingIF-Schema" || cmd.SchemaVersion != 1 || cmd.Issuer != "user:u1" || cmd.Trait() {
				t.Fatalf("command %+v", cmd)
			}
			if diff := cmp.Diff(want, cmd.Actions, cmp.Comparer(jsonEqual), cmp.AllowUnexported(thing.Action{})); diff != "" && !actionsEqual(want, cmd.Actions) {
				t.Fatalf("actions (-want +got):\n%s", diff)
			}
			got := s.awaitCommandState(t, admin, id, cid)
			if got.CommandState != "DONE" {
				t.Fatalf("command state %s", got.CommandState)
			}
			if r := string(mustJSON(t, got.ActionResults)); r != `[{"turnPower":{"succeeded":true}},{"setFanSpeed":{"succeeded":true}}]` {
				t.Fatalf("action results %s", r)
			}

			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			if err := c.PutState(ctx, map[string]any{"power": true, "fanSpeed": 5}); err != nil {
				t.Fatalf("PutState: %v", err)
			}
			if st := s.states(t, admin, id); st != `{"fanSpeed":5,"power":true}` {
				t.Fatalf("states %s", st)
			}
		})
	}
}

func TestTraitCommand(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	admin := s.adminToken(t)
	var mu sync.Mutex
	var got *thing.Command
	cfg := s.thingConfig(t, "vt-trait")
	handled := make(chan struct{}, 1)
	cfg.OnCommand = func(_ context.Context, cmd *thing.Command) []thing.Result {
		mu.Lock()
		got = cmd
		mu.Unlock()
		handled <- struct{}{}
		return []thing.Result{{Succeeded: true, Data: map[string]int{"t": 25}}, {ErrorMessage: "too hot"}, {Succeeded: true}}
	}
	c := startClient(t, cfg)
	cid := s.sendCommand(t, admin, c.ThingID(), `{"title":"cool down",`+
		`"actions":[{"AirConditionerAlias":[{"turnPower":true},{"setPresetTemperature":35}]},{"FanAlias":[{"setFanSpeed":3}]}]}`)
	<-handled
	mu.Lock()
	cmd := got
	mu.Unlock()
	want := []thing.Action{
		{Alias: "AirConditionerAlias", Name: "turnPower", Params: json.RawMessage(`true`)},
		{Alias: "AirConditionerAlias", Name: "setPresetTemperature", Params: json.RawMessage(`35`)},
		{Alias: "FanAlias", Name: "setFanSpeed", Params: json.RawMessage(`3`)},
	}
	if !cmd.Trait() || cmd.Target != "thing:"+c.ThingID() || cmd.Title != "cool down" || !actionsEqual(want, cmd.Actions) {
		t.Fatalf("command %+v", cmd)
	}
	var temp int
	if err := cmd.Actions[1].Decode(&temp); err != nil || temp != 35 {
		t.Fatalf("Decode: %d, %v", temp, err)
	}
	res := s.awaitCommandState(t, admin, c.ThingID(), cid)
	if res.CommandState != "INCOMPLETE" {
		t.Fatalf("state %s, want INCOMPLETE", res.CommandState)
	}
	want2 := `[{"AirConditionerAlias":[{"turnPower":{"succeeded":true,"data":{"t":25}}},{"setPresetTemperature":{"succeeded":false,"errorMessage":"too hot"}}]},{"FanAlias":[{"setFanSpeed":{"succeeded":true}}]}]`
	if r := string(mustJSON(t, res.ActionResults)); r != want2 {
		t.Fatalf("action results\n got %s\nwant %s", r, want2)
	}
}

func TestAPICalls(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	admin := s.adminToken(t)
	c := startClient(t, s.thingConfig(t, "vt-api"))
	id := c.ThingID()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	steps := []struct {
		name  string
		call  func() error
		state string // expected GET …/states afterwards, if set
	}{
		{"PutState", func() error { return c.PutState(ctx, map[string]any{"power": true, "temp": 20}) }, `{"power":true,"temp":20}`},
		{"PatchState", func() error { return c.PatchState(ctx, map[string]any{"temp": 22}) }, `{"power":true,"temp":22}`},
		{"PutTraitState", func() error {
			return c.PutTraitState(ctx, map[string]any{"AC": map[string]any{"power": true}, "Fan": map[string]any{"speed": 1}})
		}, `{"AC":{"power":true},"Fan":{"speed":1}}`},
		{"PatchTraitState", func() error { return c.PatchTraitState(ctx, map[string]any{"Fan": map[string]any{"speed": 3}}) },
			`{"AC":{"power":true},"Fan":{"speed":3}}`},
	}
	for _, st := range steps {
		if err := st.call(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := s.states(t, admin, id); got != st.state {
			t.Fatalf("%s: states %s, want %s", st.name, got, st.state)
		}
	}

	var e *thing.Error
	if _, err := c.FirmwareVersion(ctx); !errors.As(err, &e) || e.StatusCode != 404 {
		t.Fatalf("FirmwareVersion before it is set: %v, want a 404 *Error", err)
	}
	if err := c.SetFirmwareVersion(ctx, "2.1"); err != nil {
		t.Fatalf("SetFirmwareVersion: %v", err)
	}
	if v, err := c.FirmwareVersion(ctx); err != nil || v != "2.1" {
		t.Fatalf("FirmwareVersion: %q, %v", v, err)
	}
	if err := c.SetThingType(ctx, "Lamp"); err != nil {
		t.Fatalf("SetThingType: %v", err)
	}
	if v, err := c.ThingType(ctx); err != nil || v != "Lamp" {
		t.Fatalf("ThingType: %q, %v", v, err)
	}

	t.Run("generic", func(t *testing.T) {
		res, err := c.Do(ctx, http.MethodGet, "/targets/thing:"+id+"/states", nil, nil)
		if err != nil || res.StatusCode != 200 || !strings.Contains(string(res.Body), `"Fan":{"speed":3}`) {
			t.Fatalf("Do GET states: %v %+v", err, res)
		}
		res, err = c.Do(ctx, http.MethodPut, "targets/thing:"+id+"/states", http.Header{"Content-Type": {"text/plain"}}, []byte("x"))
		if !errors.As(err, &e) || e.StatusCode != 415 || res == nil || res.StatusCode != 415 {
			t.Fatalf("Do with a wrong content type: %v %+v", err, res)
		}
		if _, err := c.Do(ctx, http.MethodGet, "targets/thing:th.other/states", nil, nil); !errors.As(err, &e) || e.ErrorCode != "WRONG_TOKEN" {
			t.Fatalf("Do on another thing: %v", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		const n = 64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				alias := fmt.Sprintf("A%d", i)
				if err := c.PatchTraitState(ctx, map[string]any{alias: map[string]any{"i": i}}); err != nil {
					errs <- err
					return
				}
				res, err := c.Do(ctx, http.MethodGet, "targets/thing:"+id+"/states/aliases/"+alias, nil, nil)
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf(`{"i":%d}`, i); string(res.Body) != want {
					errs <- fmt.Errorf("alias %s: %s, want %s", alias, res.Body, want)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestCredentialsKept restarts a device with a FileStore: it reconnects
// with the stored endpoint instead of onboarding again.
func TestCredentialsKept(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	path := filepath.Join(t.TempDir(), "thing.json")
	cfg := s.thingConfig(t, "vt-kept")
	cfg.Store = &thing.FileStore{Path: path}

	c := startClient(t, cfg)
	first := c.Credentials()
	disconnect(t, c)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files, want only the credentials", len(entries))
	}

	cfg.Store = &thing.FileStore{Path: path} // a new process would have a new one
	c2 := startClient(t, cfg)
	if got := c2.Credentials(); got.Endpoint != first.Endpoint || !got.IssuedAt.Equal(first.IssuedAt) {
		t.Fatalf("restarted client onboarded again: %+v, first %+v", got.Endpoint, first.Endpoint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c2.PutState(ctx, map[string]any{"ok": true}); err != nil {
		t.Fatalf("PutState with kept credentials: %v", err)
	}

	t.Run("another thing onboards", func(t *testing.T) {
		other := cfg
		other.VendorThingID, other.Password = "vt-kept-2", "pw2"
		c3 := startClient(t, other)
		if c3.ThingID() == first.ThingID {
			t.Fatal("credentials of another thing were used")
		}
	})
	t.Run("ttl passed", func(t *testing.T) {
		old := *first
		old.Endpoint.TTL = 60
		old.IssuedAt = time.Now().Add(-time.Hour)
		st := new(thing.MemoryStore)
		st.Save(ctx, &old)
		c := cfg
		c.Store = st
		c4 := startClient(t, c)
		got := c4.Credentials()
		if got.Endpoint.InstallationID == first.Endpoint.InstallationID || got.ThingID != first.ThingID {
			t.Fatalf("expired endpoint was used: %+v", got)
		}
		if saved, _ := st.Load(ctx); saved.Endpoint != got.Endpoint {
			t.Fatalf("new endpoint not saved")
		}
	})
}

// TestNoLeak checks that no goroutine outlives Disconnect, calls in flight
// included.
func TestNoLeak(t *testing.T) {
	s := startServer(t, serverConfig(t.TempDir()))
	admin := s.adminToken(t)
	ignore := goleak.IgnoreCurrent()
	rec := newRecorder(true)
	cfg := s.thingConfig(t, "vt-leak")
	cfg.OnCommand = rec.handle
	c, err := thing.NewClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	awaitConnection(t, c)
	cid := s.sendCommand(t, admin, c.ThingID(), v1Command)
	s.awaitCommandState(t, admin, c.ThingID(), cid)

	// A call left waiting for an answer that never comes.
	thing.DropAnswers(c, true)
	callDone := make(chan error, 1)
	go func() { callDone <- c.PutState(context.Background(), map[string]any{"x": 1}) }()
	time.Sleep(50 * time.Millisecond) // let it publish; the test holds either way
	disconnect(t, c)
	if err := <-callDone; err == nil {
		t.Fatal("call without answer succeeded")
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Disconnect")
	}
	goleak.VerifyNone(t, ignore)
}
