// Package thing is the device side of thing-if: it onboards a thing, keeps
// its MQTT connection to the API broker up, hands the commands pushed to it
// to a handler, sends the action results back, and calls the thing-if API
// (states, firmware version, thing type, any other path) over the same
// connection.
//
// # A device in a few lines
//
//	cfg := thing.Config{
//		Server:        "tcp://localhost:1883", // the onboarding broker
//		AppID:         appID,
//		AppKey:        appKey,
//		VendorThingID: "my-thing",
//		Password:      "secret",
//		Store:         &thing.FileStore{Path: "thing.json"},
//		OnCommand: func(ctx context.Context, cmd *thing.Command) []thing.Result {
//			results := make([]thing.Result, len(cmd.Actions))
//			for i, a := range cmd.Actions {
//				log.Printf("action %s %s", a.Name, a.Params)
//				results[i] = thing.Result{Succeeded: true}
//			}
//			return results
//		},
//	}
//	c, err := thing.NewClient(ctx, cfg)
//	if err != nil { ... }
//	if err := c.AwaitConnection(ctx); err != nil { ... }
//	err = c.PutState(ctx, map[string]any{"power": true})
//	...
//	<-ctx.Done()
//	c.Disconnect(context.Background())
//
// # What the client does
//
// NewClient returns at once; a goroutine owned by the client does the rest
// until its context ends or Disconnect is called:
//
//  1. Credentials. It loads them from Config.Store. When there are none, they
//     were issued for another app or thing, or their ttl has passed, it
//     onboards: it connects to the onboarding broker (Config.Server) with
//     client ID "anonymous" and the app's credentials, publishes the
//     onboarding request to p/anonymous/thing-if/apps/{AppID}/onboardings,
//     reads the answer from the same topic, disconnects, and saves the
//     answer to the Store. A restarted device thus reconnects without
//     onboarding again.
//  2. API broker. It connects to the broker named in the answer's
//     mqttEndpoint, with the same transport as Config.Server (tcp, ssl/tls,
//     ws, wss), client ID = mqttTopic and the issued username and password,
//     and subscribes to mqttTopic at QoS 1. AwaitConnection returns once the
//     subscription is acknowledged. Every drop is followed by a reconnection
//     after an exponential backoff with jitter (Config.Backoff).
//  3. Refused credentials. When the broker refuses the credentials
//     (CONNACK 0x85, 0x86 or 0x87: thingif refuses expired or rotated
//     endpoints so) or their ttl has passed, the client onboards again
//     and continues with the new endpoint.
//  4. Commands. Every PUBLISH on mqttTopic is a command. Commands are
//     handled one at a time, in the order they arrive, by Config.OnCommand;
//     the results it returns are sent with PUT
//     …/commands/{commandID}/action-results, retried until the server takes
//     them. A commandID seen before (the server pushes a command again if it
//     was not marked delivered, after a server restart for example) is not
//     handled again.
//  5. API calls. Do and the typed helpers publish an HTTP-like request
//     (package codec) under p/{mqttTopic}/thing-if/apps/{AppID}/ at QoS 0
//     (the answer is the acknowledgement) with an X-Kii-RequestID header,
//     and match the answer by it. Calls may run
//     concurrently; each waits for a connection and for its answer until
//     its context ends. An answer can only reach the connection that asked,
//     so a call whose connection drops fails with ErrConnectionLost.
//
// Errors the server answers come back as *Error, carrying the status and
// the errorCode. A refused onboarding (wrong thing password, unknown app,
// wrong app key) is permanent: the client stops, Done is closed and Err
// says why. Network failures are never permanent.
//
// # Why paho.golang
//
// The client is built on Eclipse Paho's paho.golang and its autopaho
// connection manager, which speak MQTT 5. thingif speaks MQTT 3.1, 3.1.1
// and 5 on both brokers, so the device SDK can choose; MQTT 5 was chosen
// because autopaho brings what this package would otherwise write itself:
// the reconnect loop with an exponential backoff with jitter
// (autopaho.NewExponentialBackoff), the TCP, TLS, WebSocket and secure
// WebSocket dialers, and CONNACK reason codes as typed errors, which is how
// refused credentials are told from a network failure. paho.mqtt.golang
// (MQTT 3.1/3.1.1) is the right library for devices that must talk to an
// MQTT 3 broker; a thingif server does not need it.
//
// # Server restarts and duplicates
//
// thingif keeps a command SENDING until it has been written to a live
// connection of the thing, and pushes SENDING commands when the thing
// subscribes again, so commands sent while the device was away arrive
// when it reconnects. The same commandID may then arrive twice; the client
// remembers the last 1024 command IDs it handled and drops repeats.
// Handlers that must be exactly-once across device restarts should record
// command IDs themselves.
package thing

import "errors"

// Errors of the package; test them with errors.Is.
var (
	// ErrConnectionLost means the connection a call was sent on dropped
	// before its answer came: the answer is lost with it.
	ErrConnectionLost = errors.New("thing: connection lost")
	// ErrClosed means the client has stopped (Disconnect, its context
	// ended, or a permanent error; see Client.Err).
	ErrClosed = errors.New("thing: client closed")
	// ErrNoCredentials is returned by Store.Load when nothing is stored.
	ErrNoCredentials = errors.New("thing: no stored credentials")
	// ErrRefused means a broker refused the CONNECT with a reason code that
	// no retry can fix (wrong app credentials on the onboarding broker).
	ErrRefused = errors.New("thing: connection refused")
)
