package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestRedactHandler: whatever way a record carries a credential (a packet
// by value or pointer, raw bytes, a key that names it, inside a group or in
// WithAttrs), at every level, it is not printed; the message, client ID,
// remote address and error are.
func TestRedactHandler(t *testing.T) {
	const secret = "s3cr3t-Xy9"
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ClientIdentifier: "cl-1", Username: []byte("user"), Password: []byte(secret),
			UsernameFlag: true, PasswordFlag: true}}
	publish := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "p/t",
		Payload: []byte(`{"thingPassword":"` + secret + `"}`)}
	type holder struct{ Password string }
	for _, c := range []struct {
		name string
		log  func(l *slog.Logger)
		want string
	}{
		{"connect packet", func(l *slog.Logger) { l.Warn("error processing packet", "pk", connect) },
			`pk="CONNECT id=0 qos=0 client_id=\"cl-1\" username=true password=true"`},
		{"publish packet pointer", func(l *slog.Logger) { l.Debug("packet rejected", "packet", &publish) },
			`packet="PUBLISH id=0 qos=1 topic=\"p/t\" payload=`},
		{"bytes", func(l *slog.Logger) { l.Info("raw", "data", []byte(secret)) }, `data="[10 bytes]"`},
		{"credential key", func(l *slog.Logger) { l.Error("login", "password", secret, "client_secret", secret) },
			`password=[redacted] client_secret=[redacted]`},
		{"struct", func(l *slog.Logger) { l.Warn("odd", "v", holder{secret}) }, `v=[broker.holder]`},
		{"group", func(l *slog.Logger) { l.Warn("grouped", slog.Group("g", "pk", connect, "token", secret)) }, `g.token=[redacted]`},
		{"with attrs", func(l *slog.Logger) { l.With("pk", publish).Warn("later") }, `msg=later pk="PUBLISH`},
		{"kept", func(l *slog.Logger) {
			l.Debug("client disconnected", "client", "cl-1", "remote", "127.0.0.1:5", "error", errors.New("EOF"))
		}, `msg="client disconnected" client=cl-1 remote=127.0.0.1:5 error=EOF`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(redactHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
			c.log(l)
			out := buf.String()
			if !strings.Contains(out, c.want) {
				t.Errorf("log %q lacks %q", out, c.want)
			}
			if strings.Contains(out, secret) || strings.Contains(out, "115 51 99 114") {
				t.Errorf("secret in the log: %q", out)
			}
		})
	}
}
