package server

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// end waits (up to waitFor) for the server to end an accepted connection
// on which nothing else is expected, and describes how: "DISCONNECT 0xNN"
// when a DISCONNECT came before the close, "closed" for a plain close.
func (r *rawConn) end() string {
	r.t.Helper()
	for {
		first, body, err := r.readPacket(waitFor)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return "still open"
		case err != nil:
			return "closed"
		case first>>4 == packets.Disconnect:
			if len(body) == 0 {
				return "DISCONNECT (no reason code)"
			}
			return fmt.Sprintf("DISCONNECT 0x%02x", body[0])
		}
		if first>>4 != packets.Puback {
			r.t.Logf("packet 0x%02x before the end", first)
		}
	}
}

// stateRequest is a v1 state upload of ob over its API broker connection.
func stateRequest(ob onboardResult) (string, []byte) {
	return apiTopic(ob, "targets/thing:"+ob.ThingID+"/states"),
		reqPayload("PUT", map[string]string{"Content-Type": "application/json"}, `{"power":true}`)
}

// TestConnectionEndsAtEndpointExpiry: a connection to the API broker ends
// when the endpoint it logged in with expires (--endpoint-ttl 2s): MQTT 5
// gets DISCONNECT 0xA0 (maximum connect time) first, MQTT 3.1 and 3.1.1
// a plain close. Not before the expiry, and a reconnect with the same
// credentials is refused.
func TestConnectionEndsAtEndpointExpiry(t *testing.T) {
	const ttl = 2 * time.Second
	cfg := testConfig(t, t.TempDir())
	cfg.EndpointTTL = ttl
	s := startServer(t, cfg)
	for _, tt := range []struct {
		name             string
		version          byte
		ended, reconnect string
	}{
		{"MQTT 3.1", 3, "closed", "CONNACK 0x04"},
		{"MQTT 3.1.1", 4, "closed", "CONNACK 0x04"},
		{"MQTT 5", 5, "DISCONNECT 0xa0", "CONNACK 0x86"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
			if err != nil {
				t.Fatal(err)
			}
			issued := time.Now()
			ob := onboard(t, anon, fmt.Sprint("expiry-", tt.version), "pw")
			if got, want := ob.MQTTEndpoint.TTL, int64(ttl/time.Second); got != want {
				t.Fatalf("ttl=%d, want %d", got, want)
			}
			ep := ob.MQTTEndpoint
			c := dialRaw(t, s.Addr("mqtt-tcp").String())
			c.connect(tt.version, ep.MQTTTopic, ep.Username, ep.Password)
			if got, want := c.ask(stateRequest(ob)), "204 "; got != want {
				t.Fatalf("state upload before the expiry: %s, want %s", got, want)
			}
			if got, want := c.end(), tt.ended; got != want {
				t.Fatalf("at the expiry: %s, want %s", got, want)
			}
			// The expiry was stored in milliseconds: allow for the truncation.
			if d := time.Since(issued); d < ttl-time.Millisecond {
				t.Fatalf("ended %v after the endpoint was issued, before its ttl %v", d, ttl)
			}
			again := dialRaw(t, s.Addr("mqtt-tcp").String())
			again.v5 = tt.version == 5
			again.write(connectPacket(tt.version, ep.MQTTTopic, ep.Username, ep.Password))
			if got, want := again.outcome(), tt.reconnect; got != want {
				t.Fatalf("reconnect after the expiry: %s, want %s", got, want)
			}
		})
	}
}

// TestConnectionEndsWithPrunedInstallation: a thing keeps its five newest
// installations; the onboarding that prunes the oldest ends the connection
// logged in with it (MQTT 5: DISCONNECT 0x87, not authorized), and the
// connections of the thing's other installations, the newest included,
// stay up and keep working.
func TestConnectionEndsWithPrunedInstallation(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := s.Addr("mqtt-tcp").String()
	oldest := onboard(t, anon, "prune-1", "pw")
	first := dialRaw(t, api)
	first.connect(5, oldest.MQTTEndpoint.MQTTTopic, oldest.MQTTEndpoint.Username, oldest.MQTTEndpoint.Password)

	type conn struct {
		ob onboardResult
		c  *rawConn
	}
	var others []conn
	for range 5 {
		ob := onboard(t, anon, "prune-1", "pw")
		c := dialRaw(t, api)
		c.connect(4, ob.MQTTEndpoint.MQTTTopic, ob.MQTTEndpoint.Username, ob.MQTTEndpoint.Password)
		others = append(others, conn{ob, c})
	}
	if got, want := first.end(), "DISCONNECT 0x87"; got != want {
		t.Fatalf("connection of the pruned installation: %s, want %s", got, want)
	}
	for i, o := range others {
		if got, want := o.c.ask(stateRequest(o.ob)), "204 "; got != want {
			t.Errorf("connection of installation %d of 5 (5 = newest): %s, want %s", i+1, got, want)
		}
	}
	again := dialRaw(t, api)
	again.v5 = true
	again.write(connectPacket(5, oldest.MQTTEndpoint.MQTTTopic, oldest.MQTTEndpoint.Username, oldest.MQTTEndpoint.Password))
	if got, want := again.outcome(), "CONNACK 0x86"; got != want {
		t.Fatalf("reconnect with the pruned installation: %s, want %s", got, want)
	}
}
