package endpoint

import "github.com/mochi-mqtt/server/v2/packets"

// Refusal is why a CONNECT is refused. Each has its MQTT 5 reason code and
// its MQTT 3.1/3.1.1 return code.
type Refusal int

// The refusals a Handler may give; Accept lets the connection in.
const (
	Accept Refusal = iota
	// RefuseClientID: the client ID is not the one this broker expects.
	RefuseClientID
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

// v3Code maps the MQTT 5 reason code of a refused CONNECT (one the server
// could not accept before asking the Handler: a wrong protocol name or
// level, a reserved flag) to the closest MQTT 3 return code: a 3.1.1
// client must never see a code above 5.
func v3Code(c packets.Code) byte {
	switch c.Code {
	case packets.ErrClientIdentifierNotValid.Code:
		return 0x02
	case packets.ErrBadUsernameOrPassword.Code, packets.ErrBadAuthenticationMethod.Code:
		return 0x04
	case packets.ErrNotAuthorized.Code, packets.ErrBanned.Code:
		return 0x05
	case packets.ErrServerUnavailable.Code, packets.ErrServerBusy.Code,
		packets.ErrQuotaExceeded.Code, packets.ErrConnectionRateExceeded.Code:
		return 0x03
	default: // malformed packet, protocol error, unsupported version
		return 0x01
	}
}

// Error returns the refusal's MQTT 5 reason string.
func (r Refusal) Error() string {
	v5, _ := r.codes()
	return v5.Reason
}
