package server

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/codec"
)

// lockedBuffer is a log destination shared by the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// secretForms are the ways a log could carry s: as itself, as the decimal
// bytes a []byte field prints as ("[65 112 …]"), in hex and in base64.
func secretForms(s string) map[string]string {
	dec := make([]string, len(s))
	for i := range len(s) {
		dec[i] = strconv.Itoa(int(s[i]))
	}
	return map[string]string{
		"plain":      s,
		"decimal":    strings.Join(dec, " "),
		"hex":        hex.EncodeToString([]byte(s)),
		"HEX":        strings.ToUpper(hex.EncodeToString([]byte(s))),
		"base64":     base64.RawStdEncoding.EncodeToString([]byte(s)),
		"base64 url": base64.RawURLEncoding.EncodeToString([]byte(s)),
	}
}

// publishID0 is a QoS 1 PUBLISH with packet ID 0, which MQTT forbids: the
// server refuses it (mochi's broker logged the whole packet, payload and
// all, when it did).
func publishID0(topic string, payload []byte) []byte {
	var body []byte
	body = append(body, byte(len(topic)>>8), byte(len(topic)))
	body = append(body, topic...)
	body = append(body, 0, 0) // packet ID 0
	body = append(body, payload...)
	pk := []byte{packets.Publish<<4 | 1<<1}
	for n := len(body); ; {
		b := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			pk = append(pk, b|0x80)
			continue
		}
		pk = append(pk, b)
		break
	}
	return append(pk, body...)
}

// TestNoSecretsInLogs runs a hostile session with the server logging at
// debug level, then looks for every credential it used in the log, in
// every form a log could print it.
func TestNoSecretsInLogs(t *testing.T) {
	const (
		appID     = "logapp"
		appKey    = "AppKey-s3cr3t-Q7w9zR"
		thingPW   = "ThingPw-s3cr3t-K4z8vT"
		wrongPW   = "WrongPw-s3cr3t-P1n6sL"
		badToken  = "BadTok-s3cr3t-M2x5hJ"
		wrongKey  = "WrongKey-s3cr3t-C8d3fG"
		onboardTp = "p/anonymous/thing-if/apps/" + appID + "/onboardings"
	)
	logs := new(lockedBuffer)
	cfg := testConfig(t, t.TempDir())
	cfg.Apps = []AppCredential{{ID: appID, Key: appKey}}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startServer(t, cfg)
	onboardAddr, apiAddr := s.Addr("onboard-tcp").String(), s.Addr("mqtt-tcp").String()
	user, pass := "type=oauth2&client_id="+appID, "client_secret="+appKey
	obReq := reqPayload("POST", map[string]string{"Content-Type": ctVTID},
		fmt.Sprintf(`{"vendorThingID":"log-thing","thingPassword":%q}`, thingPW))

	// Onboard, and read the answer's credentials.
	anon := dialRaw(t, onboardAddr)
	anon.connect(4, "anonymous", user, pass)
	anon.write(publishPacket(4, onboardTp, 0, false, obReq))
	first, body, err := anon.readPacket(waitFor)
	if err != nil || first>>4 != packets.Publish {
		t.Fatalf("onboarding answer: %x %v", first, err)
	}
	res, err := codec.ParseResponse(body[2+len(onboardTp):])
	if err != nil {
		t.Fatal(err)
	}
	var ob onboardResult
	if err := json.Unmarshal(res.Body, &ob); err != nil {
		t.Fatalf("onboarding answer %s: %v", res.Body, err)
	}
	ep := ob.MQTTEndpoint
	secrets := map[string]string{
		"app key": appKey, "thing password": thingPW, "wrong thing password": wrongPW,
		"endpoint password": ep.Password, "thing token": ob.AccessToken, "bad token": badToken, "wrong app key": wrongKey,
	}

	steps := []struct {
		name string
		run  func() string
	}{
		{"second CONNECT with the app key", func() string {
			anon.write(connectPacket(4, "anonymous", user, pass))
			return anon.outcome()
		}},
		{"onboarding PUBLISH with packet ID 0", func() string {
			c := dialRaw(t, onboardAddr)
			c.connect(4, "anonymous", user, pass)
			c.write(publishID0(onboardTp, obReq))
			return c.outcome()
		}},
		{"onboarding with a wrong thing password, packet ID 0", func() string {
			c := dialRaw(t, onboardAddr)
			c.connect(4, "anonymous", user, pass)
			c.write(publishID0(onboardTp, reqPayload("POST", map[string]string{"Content-Type": ctVTID},
				fmt.Sprintf(`{"vendorThingID":"log-thing","thingPassword":%q}`, wrongPW))))
			return c.outcome()
		}},
		{"second CONNECT with the endpoint password", func() string {
			c := dialRaw(t, apiAddr)
			c.connect(4, ep.MQTTTopic, ep.Username, ep.Password)
			c.write(connectPacket(4, ep.MQTTTopic, ep.Username, ep.Password))
			return c.outcome()
		}},
		{"MQTT 5 second CONNECT with the endpoint password", func() string {
			c := dialRaw(t, apiAddr)
			c.connect(5, ep.MQTTTopic, ep.Username, ep.Password)
			c.write(connectPacket(5, ep.MQTTTopic, ep.Username, ep.Password))
			return c.outcome()
		}},
		{"wrong endpoint password", func() string {
			c := dialRaw(t, apiAddr)
			c.write(connectPacket(4, ep.MQTTTopic, ep.Username, wrongPW))
			return c.outcome()
		}},
		{"wrong app key", func() string {
			c := dialRaw(t, onboardAddr)
			c.write(connectPacket(4, "anonymous", user, "client_secret="+wrongKey))
			return c.outcome()
		}},
		{"API PUBLISH with packet ID 0 carrying the token", func() string {
			c := dialRaw(t, apiAddr)
			c.connect(4, ep.MQTTTopic, ep.Username, ep.Password)
			c.write(publishID0(apiTopicOf(ep.MQTTTopic, appID, "targets/thing:"+ob.ThingID+"/states"),
				reqPayload("PUT", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + ob.AccessToken}, `{"power":true}`)))
			return c.outcome()
		}},
		{"malformed packet after CONNECT", func() string {
			c := dialRaw(t, apiAddr)
			c.connect(4, ep.MQTTTopic, ep.Username, ep.Password)
			c.write([]byte{0xf0, 0x04, 't', 'h', 'i', 'n'}) // reserved packet type 15
			return c.outcome()
		}},
		{"bad Authorization header", func() string {
			return fmt.Sprint(rest(t, s, "GET", "/thing-if/apps/"+appID+"/targets/thing:"+ob.ThingID+"/states", badToken, "", "", nil))
		}},
		{"token request with a wrong app key", func() string {
			body := fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":%q}`, appID, wrongKey)
			return fmt.Sprint(rest(t, s, "POST", "/api/apps/"+appID+"/oauth2/token", "", "application/json", body, nil))
		}},
		{"REST call with the thing token", func() string {
			return fmt.Sprint(rest(t, s, "PUT", "/thing-if/apps/"+appID+"/targets/thing:"+ob.ThingID+"/states", ob.AccessToken, "application/json", `{"power":true}`, nil))
		}},
	}
	for _, st := range steps {
		t.Logf("%s: %s", st.name, st.run())
	}
	closeServer(t, s)

	out := logs.String()
	// The session must have reached the records of failed packets: one
	// per hostile connection, at debug level.
	if n := strings.Count(out, "connection ended"); n < 6 {
		t.Fatalf("%d connection ends logged, want one per hostile connection; the test no longer exercises the packet errors:\n%s", n, out)
	}
	for what, secret := range secrets {
		for form, v := range secretForms(secret) {
			if i := strings.Index(out, v); i >= 0 {
				line := out[strings.LastIndexByte(out[:i], '\n')+1:]
				if j := strings.IndexByte(line, '\n'); j >= 0 {
					line = line[:j]
				}
				if len(line) > 300 {
					line = line[:300] + "…"
				}
				t.Errorf("%s (%s) in the log: %s", what, form, line)
			}
		}
	}
}

// apiTopicOf is the request topic of a thing for a path under its app.
func apiTopicOf(mqttTopic, appID, rest string) string {
	return "p/" + mqttTopic + "/thing-if/apps/" + appID + "/" + rest
}
