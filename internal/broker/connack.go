package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Refusal is why a CONNECT is refused. Each has its MQTT 5 reason code and
// its MQTT 3.1/3.1.1 return code.
type Refusal int

// The refusals the brokers use.
const (
	// RefuseClientID: the client ID is not the one this broker expects.
	RefuseClientID Refusal = iota + 1
	// RefuseCredentials: unknown username, wrong password, expired endpoint.
	RefuseCredentials
	// RefuseNotAuthorized: the credentials name something that may not
	// connect here, such as an unknown app.
	RefuseNotAuthorized
	// RefuseUnavailable: the server cannot check the credentials now.
	RefuseUnavailable
	// RefuseRateLimited: too many wrong credentials came from this address
	// lately; the credentials were not checked. MQTT 5 has a code for it
	// (0x9F connection rate exceeded); MQTT 3 only "server unavailable"
	// (0x03), which devices treat as "try again later", as they should.
	RefuseRateLimited
)

// codes returns the MQTT 5 reason code and the MQTT 3 return code.
func (r Refusal) codes() (v5 packets.Code, v3 byte) {
	switch r {
	case RefuseClientID:
		return packets.ErrClientIdentifierNotValid, 0x02
	case RefuseCredentials:
		return packets.ErrBadUsernameOrPassword, 0x04
	case RefuseNotAuthorized:
		return packets.ErrNotAuthorized, 0x05
	case RefuseRateLimited:
		return packets.ErrConnectionRateExceeded, 0x03
	default:
		return packets.ErrServerUnavailable, 0x03
	}
}

// refuse writes the CONNACK for a refused CONNECT and returns the error that
// makes mochi end the connection. mochi's own mapping sends v3 clients 0x05
// for a bad password and an invalid 0x87 for "not authorized", so the
// CONNACK is built here for each protocol version.
func refuse(cl *mqtt.Client, r Refusal) error {
	v5, v3 := r.codes()
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}
	if cl.Properties.ProtocolVersion >= 5 {
		ack.ReasonCode = v5.Code
		ack.Properties.ReasonString = v5.Reason
	} else {
		ack.ReasonCode = v3
	}
	_ = cl.WritePacket(ack)
	return v5
}

// v3Connack maps the MQTT 5 reason code of a CONNACK that mochi writes to
// an MQTT 3 client (for a CONNECT it cannot parse, such as a wrong
// protocol name or a reserved flag) to the closest MQTT 3 return code:
// mochi's own table misses several, and a 3.1.1 client must never see a
// code above 5.
func v3Connack(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack || cl.Properties.ProtocolVersion == 5 || pk.ReasonCode < 0x80 {
		return pk
	}
	switch pk.ReasonCode {
	case packets.ErrClientIdentifierNotValid.Code:
		pk.ReasonCode = 0x02
	case packets.ErrBadUsernameOrPassword.Code, packets.ErrBadAuthenticationMethod.Code:
		pk.ReasonCode = 0x04
	case packets.ErrNotAuthorized.Code, packets.ErrBanned.Code:
		pk.ReasonCode = 0x05
	case packets.ErrServerUnavailable.Code, packets.ErrServerBusy.Code,
		packets.ErrQuotaExceeded.Code, packets.ErrConnectionRateExceeded.Code:
		pk.ReasonCode = 0x03
	default: // malformed packet, protocol error, unsupported version
		pk.ReasonCode = 0x01
	}
	pk.Properties = packets.Properties{}
	return pk
}
