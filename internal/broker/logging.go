package broker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// redactHandler is the handler mochi logs through. mochi puts whole packets
// in its records ("error processing packet" at warn level carries "pk", and
// its debug records carry "packet"), and a text or JSON handler prints a
// packets.Packet field by field, its byte slices as decimal numbers: a
// CONNECT's password (an app key, an endpoint password) and a PUBLISH's
// payload (a thing password, a token) would be in the log. So every
// attribute is rewritten before it reaches the real handler, at every level:
//
//   - a packet becomes a summary: type, packet ID, QoS, topic and sizes;
//   - []byte becomes its length;
//   - an attribute whose key names a credential (password, secret, token,
//     key, auth, payload) is replaced by "[redacted]";
//   - any other value that is not a string, number, bool, time, duration or
//     error becomes its type name, so that no structure holding credentials
//     (a client, its properties) is ever printed.
//
// The message, client IDs, remote addresses and errors stay.
type redactHandler struct{ slog.Handler }

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redactHandler{h.Handler.WithAttrs(red)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name)}
}

// redacted replaces a credential.
const redacted = "[redacted]"

// secretKeys are the parts of attribute keys that name credentials.
var secretKeys = []string{"pass", "secret", "token", "key", "auth", "payload", "credential"}

func redactAttr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	k := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return slog.String(a.Key, redacted)
		}
	}
	switch a.Value.Kind() {
	case slog.KindGroup:
		g := a.Value.Group()
		red := make([]any, len(g))
		for i, ga := range g {
			red[i] = redactAttr(ga)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		return slog.String(a.Key, redactValue(a.Value.Any()))
	}
	return a // strings, numbers, bools, times, durations
}

// redactValue describes a value of kind Any without its contents.
func redactValue(v any) string {
	switch v := v.(type) {
	case packets.Packet:
		return packetSummary(&v)
	case *packets.Packet:
		if v == nil {
			return "<nil>"
		}
		return packetSummary(v)
	case []byte:
		return fmt.Sprintf("[%d bytes]", len(v))
	case error:
		return v.Error()
	case time.Time, time.Duration:
		return fmt.Sprint(v)
	case nil:
		return "<nil>"
	}
	return fmt.Sprintf("[%T]", v)
}

// packetSummary says what a packet is without its credentials or payload.
func packetSummary(pk *packets.Packet) string {
	var b strings.Builder
	name, ok := packets.PacketNames[pk.FixedHeader.Type]
	if !ok {
		name = fmt.Sprintf("type %d", pk.FixedHeader.Type)
	}
	b.WriteString(strings.ToUpper(name))
	fmt.Fprintf(&b, " id=%d qos=%d", pk.PacketID, pk.FixedHeader.Qos)
	if pk.TopicName != "" {
		fmt.Fprintf(&b, " topic=%q", pk.TopicName)
	}
	if len(pk.Payload) > 0 {
		fmt.Fprintf(&b, " payload=%d bytes", len(pk.Payload))
	}
	if pk.FixedHeader.Type == packets.Connect {
		fmt.Fprintf(&b, " client_id=%q username=%t password=%t", pk.Connect.ClientIdentifier,
			pk.Connect.UsernameFlag, pk.Connect.PasswordFlag)
	}
	return b.String()
}
