package thing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Onboarding content types.
const (
	mediaOnboardVendorThingID = "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"
	mediaOnboardThingID       = "application/vnd.kii.OnboardingWithThingIDByThing+json"
)

// Onboard onboards the thing cfg names through the onboarding broker once,
// without retrying, and returns the credentials. It neither loads nor saves
// cfg.Store. A non-2xx answer is an *Error; a refused CONNECT wraps
// ErrRefused and *autopaho.ConnackError. ctx bounds the whole exchange.
func Onboard(ctx context.Context, cfg Config) (*Credentials, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return onboard(ctx, &cfg)
}

// onboardingRequest is the body of an onboarding request.
type onboardingRequest struct {
	VendorThingID        string         `json:"vendorThingID,omitempty"`
	ThingID              string         `json:"thingID,omitempty"`
	ThingPassword        string         `json:"thingPassword"`
	ThingType            string         `json:"thingType,omitempty"`
	FirmwareVersion      string         `json:"firmwareVersion,omitempty"`
	LayoutPosition       string         `json:"layoutPosition,omitempty"`
	ThingProperties      map[string]any `json:"thingProperties,omitempty"`
	DataGroupingInterval string         `json:"dataGroupingInterval,omitempty"`
}

// onboard does one onboarding exchange.
func onboard(ctx context.Context, cfg *Config) (*Credentials, error) {
	u, err := parseServer(cfg.Server)
	if err != nil {
		return nil, err
	}
	req := onboardingRequest{
		VendorThingID: cfg.VendorThingID, ThingID: cfg.ThingID, ThingPassword: cfg.Password,
		ThingType: cfg.ThingType, FirmwareVersion: cfg.FirmwareVersion, LayoutPosition: cfg.LayoutPosition,
		ThingProperties: cfg.ThingProperties, DataGroupingInterval: cfg.DataGroupingInterval,
	}
	media := mediaOnboardVendorThingID
	if cfg.ThingID != "" {
		media = mediaOnboardThingID
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("onboarding request: %w", err)
	}
	topic := "p/anonymous/thing-if/apps/" + cfg.AppID + "/onboardings"

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		pending   calls
		connErr   = make(chan error, 1)
		up        = make(chan struct{})
		upOnce    sync.Once
		connected uint64 = 1 // the only connection
	)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        cfg.TLSConfig,
		KeepAlive:                     uint16(cfg.KeepAlive / time.Second),
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                cfg.ConnectTimeout,
		// One attempt: the first failure ends the exchange (connErr), and
		// the caller decides when to try again.
		ReconnectBackoff: autopaho.NewConstantBackoff(time.Hour),
		ConnectUsername:  "type=oauth2&client_id=" + cfg.AppID,
		ConnectPassword:  []byte("client_secret=" + cfg.AppKey),
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) {
			upOnce.Do(func() { close(up) })
		},
		OnConnectionDown: func() bool {
			pending.lose(connected)
			select {
			case connErr <- ErrConnectionLost:
			default:
			}
			return false
		},
		OnConnectError: func(err error) {
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) {
				err = fmt.Errorf("onboarding broker: %w", errors.Join(ErrRefused, err))
			}
			select {
			case connErr <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "anonymous",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				var corr []byte
				if pr.Packet.Properties != nil {
					corr = pr.Packet.Properties.CorrelationData
				}
				if pr.Packet.Topic == topic {
					pending.deliver(pr.Packet.Payload, corr)
				}
				return true, nil
			}},
			OnClientError: func(error) {},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("onboarding broker: %w", err)
	}
	defer func() {
		cancel()
		<-cm.Done()
	}()
	select {
	case <-up:
	case err := <-connErr:
		return nil, fmt.Errorf("onboard: %w", err)
	case <-ctx.Done():
		return nil, fmt.Errorf("onboard: connect: %w", ctx.Err())
	}

	id := newRequestID()
	w := pending.add(id, connected)
	defer pending.remove(id)
	payload := requestPayload(http.MethodPost, id, "", http.Header{"Content-Type": {media}}, body)
	if _, err := cm.Publish(ctx, &paho.Publish{
		Topic: topic, QoS: 0, Payload: payload, // the answer acknowledges it
		Properties: &paho.PublishProperties{CorrelationData: []byte(id)},
	}); err != nil {
		return nil, fmt.Errorf("onboard: publish: %w", err)
	}
	var res *Response
	select {
	case r, ok := <-w.ch:
		if !ok {
			return nil, fmt.Errorf("onboard: %w", ErrConnectionLost)
		}
		res = r
	case err := <-connErr:
		return nil, fmt.Errorf("onboard: %w", err)
	case <-ctx.Done():
		return nil, fmt.Errorf("onboard: no answer: %w", ctx.Err())
	}
	if err := errorFrom(res); err != nil {
		return nil, fmt.Errorf("onboard: %w", err)
	}
	var ans struct {
		AccessToken  string   `json:"accessToken"`
		ThingID      string   `json:"thingID"`
		MQTTEndpoint Endpoint `json:"mqttEndpoint"`
	}
	if err := json.Unmarshal(res.Body, &ans); err != nil {
		return nil, fmt.Errorf("onboard: answer: %w", err)
	}
	if ans.ThingID == "" || ans.MQTTEndpoint.MQTTTopic == "" || ans.MQTTEndpoint.Username == "" {
		return nil, fmt.Errorf("onboard: answer has no thingID or mqttEndpoint: %.200s", res.Body)
	}
	return &Credentials{
		AppID:         cfg.AppID,
		VendorThingID: cfg.VendorThingID,
		ThingID:       ans.ThingID,
		AccessToken:   ans.AccessToken,
		Endpoint:      ans.MQTTEndpoint,
		IssuedAt:      time.Now(),
	}, nil
}
