package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/thingif/thingif/codec"
)

// hostileEnv is a server with two apps and two onboarded things of app1.
type hostileEnv struct {
	t             *testing.T
	s             *Server
	admin, admin2 string
	a, b, expired onboardResult
	a2            onboardResult // a thing of app2
	onboardAddr   string
	apiAddr       string
	httpBase      string
}

const (
	app2ID  = "app2"
	app2Key = "key2"
	ctVTID  = "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"
)

var anonUser, anonPass = "type=oauth2&client_id=" + testAppID, "client_secret=" + testAppKey

func reqPayload(method string, header map[string]string, body string) []byte {
	h := http.Header{}
	for k, v := range header {
		h[k] = []string{v}
	}
	return codec.AppendRequest(nil, method, h, []byte(body))
}

// anon returns an accepted MQTT 3.1.1 connection to the onboarding broker.
func (h *hostileEnv) anon() *rawConn {
	c := dialRaw(h.t, h.onboardAddr)
	c.connect(4, "anonymous", anonUser, anonPass)
	return c
}

// thing returns an accepted MQTT 3.1.1 connection of ob to the API broker.
func (h *hostileEnv) thing(ob onboardResult) *rawConn {
	c := dialRaw(h.t, h.apiAddr)
	ep := ob.MQTTEndpoint
	c.connect(4, ep.MQTTTopic, ep.Username, ep.Password)
	return c
}

// ask publishes one request and returns the outcome.
func (c *rawConn) ask(topic string, payload []byte) string {
	c.write(publishPacket(map[bool]byte{true: 5, false: 4}[c.v5], topic, 1, false, payload))
	return c.outcome()
}

func (h *hostileEnv) topic(ob onboardResult, rest string) string { return apiTopic(ob, rest) }

// rest sends a raw HTTP/1.1 request and returns "<status> <errorCode>".
func (h *hostileEnv) rest(method, path string, header map[string]string, body string) string {
	req, err := http.NewRequest(method, h.httpBase+path, strings.NewReader(body))
	if err != nil {
		return "bad request: " + err.Error()
	}
	for k, v := range header {
		req.Header[k] = []string{v}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "error " + err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var code string
	if i := bytes.Index(b, []byte(`"errorCode":"`)); i >= 0 {
		code = string(b[i+13:])
		code = code[:strings.IndexByte(code, '"')]
	}
	return strings.TrimSpace(fmt.Sprintf("%d %s", res.StatusCode, code))
}

// rawHTTP writes bytes to the HTTP listener and returns the status line's code.
func (h *hostileEnv) rawHTTP(b []byte) string {
	c, err := net.Dial("tcp", h.s.Addr("http").String())
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	_, _ = c.Write(b)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line := make([]byte, 12)
	if _, err := io.ReadFull(c, line); err != nil {
		return "closed"
	}
	return string(line[9:12])
}

type hostileCase struct {
	name string
	want string
	run  func(h *hostileEnv) string
}

// connectCase sends a raw first packet to the onboarding (or API) broker.
func connectCase(name, want string, api bool, b []byte) hostileCase {
	return hostileCase{name, want, func(h *hostileEnv) string {
		addr := h.onboardAddr
		if api {
			addr = h.apiAddr
		}
		c := dialRaw(h.t, addr)
		c.v5 = len(b) > 8 && b[8] == 5
		c.write(b)
		return c.outcome()
	}}
}

// withConnectFlags returns a v4 CONNECT with its flags byte replaced.
func withConnectFlags(b []byte, flags byte) []byte {
	out := bytes.Clone(b)
	out[9] = flags // 0x10 len(1) 0x00 0x04 MQTT(4) level(1) flags
	return out
}

func hostileCases() []hostileCase {
	good := connectPacket(4, "anonymous", anonUser, anonPass)
	badName := bytes.Replace(bytes.Clone(good), []byte("MQTT"), []byte("MQTX"), 1)
	badLevel := bytes.Clone(good)
	badLevel[8] = 9
	mqisdpLevel4 := connectPacket(3, "anonymous", anonUser, anonPass)
	mqisdpLevel4[10] = 4
	obTopic := onboardTopic
	onboardReq := func(body string) []byte {
		return reqPayload("POST", map[string]string{"Content-Type": ctVTID}, body)
	}
	manyHeaders := map[string]string{"Content-Type": ctVTID}
	for i := range 70 {
		manyHeaders[fmt.Sprintf("X-H%d", i)] = "v"
	}
	longHeader := map[string]string{"Content-Type": ctVTID, "X-Long": strings.Repeat("a", 17<<10)}
	bigBody := `{"vendorThingID":"big","thingPassword":"` + strings.Repeat("p", 1<<20) + `"}`
	stateCT := map[string]string{"Content-Type": "application/json"}
	bearer := func(tok string, more map[string]string) map[string]string {
		m := map[string]string{"Authorization": "Bearer " + tok}
		for k, v := range more {
			m[k] = v
		}
		return m
	}

	cs := []hostileCase{
		// CONNECTs the onboarding broker refuses.
		connectCase("connect/protocol name MQTX", "CONNACK 0x01", false, badName),
		connectCase("connect/protocol level 9", "CONNACK 0x01", false, badLevel),
		connectCase("connect/MQIsdp with level 4", "CONNACK 0x01", false, mqisdpLevel4),
		connectCase("connect/reserved flag bit", "CONNACK 0x01", false, withConnectFlags(good, 0xc3)),
		connectCase("connect/password without username", "CONNACK 0x04", false, withConnectFlags(good, 0x42)),
		connectCase("connect/will QoS 3", "closed", false, withConnectFlags(good, 0xde)),
		connectCase("connect/truncated, then silent", "closed", false, good[:len(good)-3]),
		connectCase("connect/remaining length of 5 bytes", "closed", false, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}),
		connectCase("connect/remaining length over the packet limit", "closed", false, []byte{0x10, 0xff, 0xff, 0xff, 0x7f}),
		connectCase("connect/first packet PUBLISH", "closed", false, publishPacket(4, obTopic, 0, false, []byte("x"))),
		connectCase("connect/first packet PINGREQ", "closed", false, []byte{0xc0, 0x00}),
		connectCase("connect/first packet SUBSCRIBE", "closed", false, subscribePacket(4, "#")),
		connectCase("connect/HTTP on the MQTT port", "closed", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
		connectCase("connect/client ID not anonymous", "CONNACK 0x02", false, connectPacket(4, "device-1", anonUser, anonPass)),
		connectCase("connect/empty client ID", "CONNACK 0x02", false, connectPacket(4, "", anonUser, anonPass)),
		connectCase("connect/client ID invalid UTF-8", "closed", false, connectPacket(4, "anon\xff\xfe", anonUser, anonPass)),
		connectCase("connect/username not oauth2", "CONNACK 0x04", false, connectPacket(4, "anonymous", "admin", anonPass)),
		connectCase("connect/no credentials", "CONNACK 0x04", false, connectPacket(4, "anonymous", "", "")),
		connectCase("connect/unknown app", "CONNACK 0x05", false, connectPacket(4, "anonymous", "type=oauth2&client_id=nope", anonPass)),
		connectCase("connect/wrong app key", "CONNACK 0x04", false, connectPacket(4, "anonymous", anonUser, "client_secret=guess")),
		connectCase("connect/v3.1 wrong app key", "CONNACK 0x04", false, connectPacket(3, "anonymous", anonUser, "client_secret=guess")),
		connectCase("connect/v5 wrong app key", "CONNACK 0x86", false, connectPacket(5, "anonymous", anonUser, "client_secret=guess")),
		connectCase("connect/v5 unknown app", "CONNACK 0x87", false, connectPacket(5, "anonymous", "type=oauth2&client_id=nope", anonPass)),
		connectCase("connect/v5 client ID not anonymous", "CONNACK 0x85", false, connectPacket(5, "x", anonUser, anonPass)),
		connectCase("connect/app key of another app", "CONNACK 0x04", false, connectPacket(4, "anonymous", anonUser, "client_secret="+app2Key)),
		{"connect/second CONNECT", "closed", func(h *hostileEnv) string {
			c := h.anon()
			c.write(good)
			return c.outcome()
		}},

		// What an accepted onboarding connection may not do.
		{"onboard/publish outside the request space", "closed", func(h *hostileEnv) string {
			return h.anon().ask("p/someone/thing-if/apps/"+testAppID+"/onboardings", onboardReq(onboardingBody("x", "y")))
		}},
		{"onboard/publish to another app's space", "closed", func(h *hostileEnv) string {
			return h.anon().ask("p/anonymous/thing-if/apps/"+app2ID+"/onboardings", onboardReq(onboardingBody("x", "y")))
		}},
		{"onboard/publish with a wildcard topic", "closed", func(h *hostileEnv) string {
			return h.anon().ask("p/anonymous/thing-if/apps/"+testAppID+"/#", onboardReq(onboardingBody("x", "y")))
		}},
		{"onboard/publish invalid UTF-8 topic", "closed", func(h *hostileEnv) string {
			return h.anon().ask("p/anonymous/thing-if/apps/"+testAppID+"/onboard\xff", onboardReq(onboardingBody("x", "y")))
		}},
		{"onboard/publish on a thing's push topic", "closed", func(h *hostileEnv) string {
			return h.anon().ask(h.a.MQTTEndpoint.MQTTTopic, []byte(`{"commandID":"fake"}`))
		}},
		{"onboard/payload not HTTP-over-MQTT", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, []byte("\x00\x01\x02 binary"))
		}},
		{"onboard/empty payload", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string { return h.anon().ask(obTopic, nil) }},
		{"onboard/method line with a path", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, []byte("POST /x HTTP/1.1\nContent-Type: "+ctVTID+"\n\n{}"))
		}},
		{"onboard/unknown method", "405 METHOD_NOT_ALLOWED", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, reqPayload("BREW", map[string]string{"Content-Type": ctVTID}, "{}"))
		}},
		{"onboard/unknown path", "404 NOT_FOUND", func(h *hostileEnv) string {
			return h.anon().ask("p/anonymous/thing-if/apps/"+testAppID+"/teapot", onboardReq("{}"))
		}},
		{"onboard/dot-dot path", "closed", func(h *hostileEnv) string {
			return h.anon().ask("p/anonymous/thing-if/apps/"+testAppID+"/../"+app2ID+"/onboardings", onboardReq(onboardingBody("x", "y")))
		}},
		{"onboard/invalid JSON", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, onboardReq(`{"vendorThingID":`))
		}},
		{"onboard/JSON array body", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, onboardReq(`[1,2]`))
		}},
		{"onboard/invalid UTF-8 in JSON", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, onboardReq("{\"vendorThingID\":\"\xff\",\"thingPassword\":\"x\"}"))
		}},
		{"onboard/missing password", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, onboardReq(`{"vendorThingID":"x"}`))
		}},
		{"onboard/wrong content type", "415 UNSUPPORTED_MEDIA_TYPE", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, reqPayload("POST", map[string]string{"Content-Type": "text/plain"}, onboardingBody("x", "y")))
		}},
		{"onboard/no content type", "415 UNSUPPORTED_MEDIA_TYPE", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, reqPayload("POST", nil, onboardingBody("x", "y")))
		}},
		{"onboard/70 headers", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, reqPayload("POST", manyHeaders, onboardingBody("x", "y")))
		}},
		{"onboard/17 KiB header block", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, reqPayload("POST", longHeader, onboardingBody("x", "y")))
		}},
		{"onboard/body over 1 MiB", "413 REQUEST_ENTITY_TOO_LARGE", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, onboardReq(bigBody))
		}},
		{"onboard/packet over the limit", "closed", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, onboardReq(strings.Repeat("x", 2<<20)))
		}},
		{"onboard/wrong thing password", "403 WRONG_PASSWORD", func(h *hostileEnv) string {
			return h.anon().ask(obTopic, onboardReq(onboardingBody("vt-a", "guess")))
		}},
		{"onboard/state API on the onboarding broker", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.anon().ask("p/anonymous/thing-if/apps/"+testAppID+"/targets/thing:"+h.a.ThingID+"/states",
				reqPayload("PUT", map[string]string{"Content-Type": "application/json"}, `{"power":true}`))
		}},
		{"onboard/subscribe #", "SUBACK 0x80", func(h *hostileEnv) string {
			c := h.anon()
			c.write(subscribePacket(4, "#"))
			return c.outcome()
		}},
		{"onboard/subscribe $SYS/#", "SUBACK 0x80", func(h *hostileEnv) string {
			c := h.anon()
			c.write(subscribePacket(4, "$SYS/#"))
			return c.outcome()
		}},
		{"onboard/subscribe a thing's push topic", "SUBACK 0x80", func(h *hostileEnv) string {
			c := h.anon()
			c.write(subscribePacket(4, h.a.MQTTEndpoint.MQTTTopic))
			return c.outcome()
		}},
		{"onboard/retained request is not kept", "200 ", func(h *hostileEnv) string {
			c := h.anon()
			c.write(publishPacket(4, obTopic, 0, true, onboardReq(onboardingBody("vt-a", "pw-a"))))
			first := c.outcome()
			// A later subscriber to the topic gets its SUBACK and nothing retained.
			d := h.anon()
			d.write(subscribePacket(4, obTopic))
			if got := d.outcome(); got != "SUBACK 0x00" {
				return "subscribe: " + got
			}
			if got := d.outcome(); got != "silent" {
				return "retained: " + got
			}
			return first
		}},

		// CONNECTs the API broker refuses.
		{"api/wrong password", "CONNACK 0x04", func(h *hostileEnv) string {
			c := dialRaw(h.t, h.apiAddr)
			c.write(connectPacket(4, h.a.MQTTEndpoint.MQTTTopic, h.a.MQTTEndpoint.Username, "guess"))
			return c.outcome()
		}},
		{"api/v5 wrong password", "CONNACK 0x86", func(h *hostileEnv) string {
			c := dialRaw(h.t, h.apiAddr)
			c.v5 = true
			c.write(connectPacket(5, h.a.MQTTEndpoint.MQTTTopic, h.a.MQTTEndpoint.Username, "guess"))
			return c.outcome()
		}},
		{"api/unknown username", "CONNACK 0x04", func(h *hostileEnv) string {
			c := dialRaw(h.t, h.apiAddr)
			c.write(connectPacket(4, h.a.MQTTEndpoint.MQTTTopic, "nobody", h.a.MQTTEndpoint.Password))
			return c.outcome()
		}},
		{"api/client ID of another thing", "CONNACK 0x02", func(h *hostileEnv) string {
			c := dialRaw(h.t, h.apiAddr)
			c.write(connectPacket(4, h.b.MQTTEndpoint.MQTTTopic, h.a.MQTTEndpoint.Username, h.a.MQTTEndpoint.Password))
			return c.outcome()
		}},
		{"api/app credentials", "CONNACK 0x04", func(h *hostileEnv) string {
			c := dialRaw(h.t, h.apiAddr)
			c.write(connectPacket(4, "anonymous", anonUser, anonPass))
			return c.outcome()
		}},
		{"api/expired endpoint", "CONNACK 0x04", func(h *hostileEnv) string {
			c := dialRaw(h.t, h.apiAddr)
			ep := h.expired.MQTTEndpoint
			c.write(connectPacket(4, ep.MQTTTopic, ep.Username, ep.Password))
			return c.outcome()
		}},
		{"api/v5 expired endpoint", "CONNACK 0x86", func(h *hostileEnv) string {
			c := dialRaw(h.t, h.apiAddr)
			c.v5 = true
			ep := h.expired.MQTTEndpoint
			c.write(connectPacket(5, ep.MQTTTopic, ep.Username, ep.Password))
			return c.outcome()
		}},

		// What a connected thing may not do.
		{"api/publish into another thing's space", "closed", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.b, "targets/thing:"+h.b.ThingID+"/states"), reqPayload("PUT", stateCT, `{}`))
		}},
		{"api/publish on its own push topic", "closed", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.a.MQTTEndpoint.MQTTTopic, []byte(`{"commandID":"x"}`))
		}},
		{"api/publish on another thing's push topic", "closed", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.b.MQTTEndpoint.MQTTTopic, []byte(`{"commandID":"x"}`))
		}},
		{"api/publish as anonymous onboarding", "closed", func(h *hostileEnv) string {
			return h.thing(h.a).ask(obTopic, onboardReq(onboardingBody("x", "y")))
		}},
		{"api/subscribe another thing's topic", "SUBACK 0x80", func(h *hostileEnv) string {
			c := h.thing(h.a)
			c.write(subscribePacket(4, h.b.MQTTEndpoint.MQTTTopic))
			return c.outcome()
		}},
		{"api/subscribe +", "SUBACK 0x80", func(h *hostileEnv) string {
			c := h.thing(h.a)
			c.write(subscribePacket(4, "+"))
			return c.outcome()
		}},
		{"api/subscribe p/#", "SUBACK 0x80", func(h *hostileEnv) string {
			c := h.thing(h.a)
			c.write(subscribePacket(4, "p/#"))
			return c.outcome()
		}},
		{"api/subscribe shared", "SUBACK 0x80", func(h *hostileEnv) string {
			c := h.thing(h.a)
			c.write(subscribePacket(4, "$share/g/"+h.b.MQTTEndpoint.MQTTTopic))
			return c.outcome()
		}},
		{"api/state with another thing's token", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.a.ThingID+"/states"), reqPayload("PUT", bearer(h.b.AccessToken, stateCT), `{}`))
		}},
		{"api/state of another thing", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.b.ThingID+"/states"), reqPayload("PUT", stateCT, `{}`))
		}},
		{"api/token of another app's thing", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.a.ThingID+"/states"), reqPayload("PUT", bearer(h.a2.AccessToken, stateCT), `{}`))
		}},
		{"api/commands of another thing", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.b.ThingID+"/commands"), reqPayload("GET", nil, ""))
		}},
		{"api/state invalid JSON", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.a.ThingID+"/states"), reqPayload("PUT", stateCT, `{"power":`))
		}},
		{"api/state wrong content type", "415 UNSUPPORTED_MEDIA_TYPE", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.a.ThingID+"/states"), reqPayload("PUT", map[string]string{"Content-Type": "text/xml"}, `<a/>`))
		}},
		{"api/action results of an unknown command", "404 COMMAND_NOT_FOUND", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.a.ThingID+"/commands/nope/action-results"),
				reqPayload("PUT", stateCT, `{"actionResults":[{"a":{"succeeded":true}}]}`))
		}},
		{"api/unknown method", "405 METHOD_NOT_ALLOWED", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.a.ThingID+"/states"), reqPayload("DELETE", nil, ""))
		}},
		{"api/unknown path", "404 NOT_FOUND", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "admin/apps"), reqPayload("GET", nil, ""))
		}},
		{"api/garbage payload", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.a.ThingID+"/states"), []byte("\r\n\r\n\x00"))
		}},
		{"api/send a command as a thing", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.thing(h.a).ask(h.topic(h.a, "targets/thing:"+h.a.ThingID+"/commands"),
				reqPayload("POST", stateCT, `{"schema":"s","schemaVersion":1,"issuer":"user:u","actions":[{"a":{}}]}`))
		}},

		// REST.
		{"rest/onboarding without a token", "401 UNAUTHORIZED", func(h *hostileEnv) string {
			return h.rest("POST", "/thing-if/apps/"+testAppID+"/onboardings", map[string]string{"Content-Type": ctVTID}, onboardingBody("x", "y"))
		}},
		{"rest/Authorization not Bearer", "401 UNAUTHORIZED", func(h *hostileEnv) string {
			return h.rest("POST", "/thing-if/apps/"+testAppID+"/onboardings", map[string]string{"Content-Type": ctVTID, "Authorization": "Basic eDp5"}, onboardingBody("x", "y"))
		}},
		{"rest/made-up token", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.rest("GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+h.a.ThingID+"/states", map[string]string{"Authorization": "Bearer forged"}, "")
		}},
		{"rest/onboarding invalid JSON", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.rest("POST", "/thing-if/apps/"+testAppID+"/onboardings", bearer(h.admin, map[string]string{"Content-Type": ctVTID}), "{")
		}},
		{"rest/onboarding wrong content type", "415 UNSUPPORTED_MEDIA_TYPE", func(h *hostileEnv) string {
			return h.rest("POST", "/thing-if/apps/"+testAppID+"/onboardings", bearer(h.admin, map[string]string{"Content-Type": "application/xml"}), "{}")
		}},
		{"rest/unknown path", "404 NOT_FOUND", func(h *hostileEnv) string { return h.rest("GET", "/admin", nil, "") }},
		{"rest/dot-dot path", "404 NOT_FOUND", func(h *hostileEnv) string {
			return h.rawHTTP([]byte("GET /thing-if/apps/"+testAppID+"/../"+app2ID+"/targets/thing:x/states HTTP/1.1\r\nHost: x\r\n\r\n")) + " NOT_FOUND"
		}},
		{"rest/unknown method", "405 METHOD_NOT_ALLOWED", func(h *hostileEnv) string {
			return h.rest("BREW", "/thing-if/apps/"+testAppID+"/onboardings", nil, "")
		}},
		{"rest/body over 1 MiB", "413 REQUEST_ENTITY_TOO_LARGE", func(h *hostileEnv) string {
			return h.rest("POST", "/thing-if/apps/"+testAppID+"/onboardings", bearer(h.admin, map[string]string{"Content-Type": ctVTID}), bigBody)
		}},
		{"rest/header block over 64 KiB", "431", func(h *hostileEnv) string {
			var b strings.Builder
			b.WriteString("GET / HTTP/1.1\r\nHost: x\r\n")
			for i := range 2000 {
				fmt.Fprintf(&b, "X-H%d: %s\r\n", i, strings.Repeat("v", 40))
			}
			b.WriteString("\r\n")
			return h.rawHTTP([]byte(b.String()))
		}},
		{"rest/malformed request line", "400", func(h *hostileEnv) string { return h.rawHTTP([]byte("\x00\x01 / HTTP/9\r\n\r\n")) }},
		{"rest/state with another thing's token", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.rest("PUT", "/thing-if/apps/"+testAppID+"/targets/thing:"+h.a.ThingID+"/states", bearer(h.b.AccessToken, stateCT), `{}`)
		}},
		{"rest/state with another app's token", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.rest("PUT", "/thing-if/apps/"+testAppID+"/targets/thing:"+h.a.ThingID+"/states", bearer(h.admin2, stateCT), `{}`)
		}},
		{"rest/command with a thing token", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.rest("POST", "/thing-if/apps/"+testAppID+"/targets/thing:"+h.a.ThingID+"/commands", bearer(h.a.AccessToken, stateCT),
				`{"schema":"s","schemaVersion":1,"issuer":"user:u","actions":[{"a":{}}]}`)
		}},
		{"rest/command invalid JSON", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.rest("POST", "/thing-if/apps/"+testAppID+"/targets/thing:"+h.a.ThingID+"/commands", bearer(h.admin, stateCT), `{"actions":`)
		}},
		{"rest/command to another app's thing", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.rest("POST", "/thing-if/apps/"+app2ID+"/targets/thing:"+h.a2.ThingID+"/commands", bearer(h.admin, stateCT),
				`{"schema":"s","schemaVersion":1,"issuer":"user:u","actions":[{"a":{}}]}`)
		}},
		{"rest/mqtt-endpoint of another thing's installation", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			return h.rest("GET", "/api/apps/"+testAppID+"/installations/"+h.b.MQTTEndpoint.InstallationID+"/mqtt-endpoint", bearer(h.a.AccessToken, nil), "")
		}},
		{"rest/token invalid JSON", "400 INVALID_INPUT_DATA", func(h *hostileEnv) string {
			return h.rest("POST", "/api/apps/"+testAppID+"/oauth2/token", stateCT, `{"grant_type":`)
		}},
		{"rest/token wrong grant type", "400 unsupported_grant_type", func(h *hostileEnv) string {
			return h.rest("POST", "/api/apps/"+testAppID+"/oauth2/token", stateCT, `{"grant_type":"password","client_id":"app1"}`)
		}},
		{"rest/token unknown app", "404 APP_NOT_FOUND", func(h *hostileEnv) string {
			return h.rest("POST", "/api/apps/nope/oauth2/token", stateCT, `{"grant_type":"client_credentials","client_id":"nope","client_secret":"x"}`)
		}},
		{"rest/token wrong content type", "415 UNSUPPORTED_MEDIA_TYPE", func(h *hostileEnv) string {
			return h.rest("POST", "/api/apps/"+testAppID+"/oauth2/token", map[string]string{"Content-Type": "text/plain"}, `x`)
		}},
		{"rest/token client_id of another app", "401 invalid_client", func(h *hostileEnv) string {
			return h.rest("POST", "/api/apps/"+testAppID+"/oauth2/token", stateCT, `{"grant_type":"client_credentials","client_id":"app2","client_secret":"key2"}`)
		}},
		{"rest/anonymous token cannot read states", "403 WRONG_TOKEN", func(h *hostileEnv) string {
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			rest(h.t, h.s, "POST", "/api/apps/"+testAppID+"/oauth2/token", "", "application/json",
				`{"grant_type":"client_credentials","client_id":"app1","client_secret":"dummy"}`, &tok)
			return h.rest("GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+h.a.ThingID+"/states", bearer(tok.AccessToken, nil), "")
		}},
	}
	return cs
}

// heapAfterGC returns the live heap after garbage collection.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHostileInput runs the catalogue of hostile inputs over both brokers
// and REST: each gets its documented answer (docs/security.md), and
// afterwards a normal thing still onboards and works, and the heap is back
// near where it was.
func TestHostileInput(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Apps = append(cfg.Apps, AppCredential{ID: app2ID, Key: app2Key})
	cfg.Limits.ConnectTimeout = time.Second
	cfg.Limits.BruteForce.Free = 1000 // the brute-force test covers limits
	s := startServer(t, cfg)
	h := &hostileEnv{t: t, s: s, admin: adminToken(t, s),
		onboardAddr: s.Addr("onboard-tcp").String(), apiAddr: s.Addr("mqtt-tcp").String(),
		httpBase: fmt.Sprintf("http://127.0.0.1:%d", s.Port("http"))}
	anon := dialAnonymous(t, s)
	h.a, h.b, h.expired = onboard(t, anon, "vt-a", "pw-a"), onboard(t, anon, "vt-b", "pw-b"), onboard(t, anon, "vt-exp", "pw")
	anon.Close()
	ctx := context.Background()
	in, err := s.Store().InstallationByUsername(ctx, h.expired.MQTTEndpoint.Username)
	if err != nil {
		t.Fatal(err)
	}
	in.ExpiresAt = time.Now().Add(-time.Second)
	if err := s.Store().PutInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	{
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		rest(t, s, "POST", "/api/apps/"+app2ID+"/oauth2/token", "", "application/json",
			`{"grant_type":"client_credentials","client_id":"app2","client_secret":"key2"}`, &tok)
		h.admin2 = tok.AccessToken
		var ob onboardResult
		if st := rest(t, s, "POST", "/thing-if/apps/"+app2ID+"/onboardings", h.admin2, ctVTID, onboardingBody("vt-a", "pw"), &ob); st != 200 {
			t.Fatalf("app2 onboarding: %d", st)
		}
		h.a2 = ob
	}

	// The baseline is taken with the server set up and serving.
	cases := hostileCases()
	if len(cases) < 60 {
		t.Fatalf("only %d cases", len(cases))
	}
	goroutines := runtime.NumGoroutine()
	before := heapAfterGC()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			if got := c.run(h); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
	h.t = t
	t.Logf("%d hostile cases", len(cases))

	// A normal thing still onboards and works.
	anon = dialAnonymous(t, s)
	ob := onboard(t, anon, "vt-after", "pw")
	c := dialThing(t, s, ob)
	c.Subscribe(t, ob.MQTTEndpoint.MQTTTopic, 0)
	cid := sendCommand(t, s, h.admin, ob.ThingID, `[{"turnPower":{"power":true}}]`)
	if m := await(t, c, ob.MQTTEndpoint.MQTTTopic); !strings.Contains(string(m.Payload), cid) {
		t.Fatalf("push %s", m.Payload)
	}
	res := call(t, c, apiTopic(ob, "targets/thing:"+ob.ThingID+"/states"), "PUT",
		map[string]string{"Content-Type": "application/json"}, `{"power":true}`)
	if res.StatusCode != 204 {
		t.Fatalf("state upload after the catalogue: %d %s", res.StatusCode, res.Body)
	}
	anon.Close()
	c.Close()

	// Memory and goroutines back near where they were: the connections of
	// the catalogue are gone and nothing they sent is kept.
	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > goroutines+10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines+10 {
		t.Errorf("%d goroutines after the catalogue, %d before", n, goroutines)
	}
	after := heapAfterGC()
	t.Logf("heap after GC: %d KiB before the catalogue, %d KiB after", before>>10, after>>10)
	if after > before+16<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB", before>>10, after>>10)
	}
}
