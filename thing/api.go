package thing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/thingif/thingif/codec"
)

// Content types of the thing-side API.
const (
	mediaJSON               = "application/json"
	mediaMultipleTraitState = "application/vnd.kii.MultipleTraitState+json"
	mediaMultipleTraitPatch = "application/vnd.kii.MultipleTraitStatePatch+json"
	mediaFirmwareVersion    = "application/vnd.kii.ThingFirmwareVersionUpdateRequest+json"
	mediaThingType          = "application/vnd.kii.ThingTypeUpdateRequest+json"
	headerContentType       = "Content-Type"
)

// Do calls the thing-if API over the API broker: method on path, the REST
// path after /thing-if/apps/{AppID}/ (such as
// "targets/thing:th.1/states"; a leading "/" is ignored, a query string is
// kept). The request carries header, an X-Kii-RequestID and, unless header
// has one, the thing's token as Authorization.
//
// Do waits for a connection, publishes the request and waits for its
// answer, as long as ctx allows. It returns the answer and, for a status
// outside 2xx, an *Error as well. If the connection drops before the answer
// comes, the error is ErrConnectionLost: the request may or may not have
// been served.
func (c *Client) Do(ctx context.Context, method, path string, header http.Header, body []byte) (*Response, error) {
	return c.do(ctx, method, func(string) string { return path }, header, body)
}

// thingPath returns a function giving the path of rest ("states",
// "commands/…") under the thing's target.
func thingPath(format string) func(thingID string) string {
	return func(id string) string { return fmt.Sprintf(format, id) }
}

// do is Do with the path computed from the thing ID of the credentials the
// request goes out with.
func (c *Client) do(ctx context.Context, method string, pathOf func(thingID string) string, header http.Header, body []byte) (*Response, error) {
	for {
		if err := c.AwaitConnection(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		c.mu.Lock()
		cm, creds, conn := c.cm, c.creds, c.conn
		if cm == nil {
			c.mu.Unlock()
			continue // dropped since AwaitConnection
		}
		path := strings.TrimPrefix(pathOf(creds.ThingID), "/")
		topic := codec.Topic{ClientID: creds.Endpoint.MQTTTopic, AppID: c.cfg.AppID, Rest: path}
		if _, err := codec.ParseTopic(topic.String()); err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		id := newRequestID()
		w := c.calls.add(id, conn)
		c.mu.Unlock()

		res, err := c.exchange(ctx, cm, w, id, topic.String(), requestPayload(method, id, creds.AccessToken, header, body))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		if err := errorFrom(res); err != nil {
			return res, fmt.Errorf("%s %s: %w", method, path, err)
		}
		return res, nil
	}
}

// exchange publishes a request registered as w and waits for its answer.
func (c *Client) exchange(ctx context.Context, cm *autopaho.ConnectionManager, w *waiter, id, topic string, payload []byte) (*Response, error) {
	defer c.calls.remove(id)
	// QoS 0: the answer is the acknowledgement, and a PUBACK would only
	// hold the call on a connection that may be gone.
	_, err := cm.Publish(ctx, &paho.Publish{
		Topic: topic, QoS: 0, Payload: payload,
		Properties: &paho.PublishProperties{CorrelationData: []byte(id)},
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ne net.Error
		if errors.Is(err, autopaho.ConnectionDownError) || errors.Is(err, session.ErrNoConnection) ||
			errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.As(err, &ne) || c.lost(w) {
			return nil, fmt.Errorf("%w: %w", ErrConnectionLost, err)
		}
		return nil, fmt.Errorf("publish: %w", err)
	}
	select {
	case res, ok := <-w.ch:
		if !ok {
			return nil, ErrConnectionLost
		}
		return res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// doJSON calls do with v encoded as the JSON body.
func (c *Client) doJSON(ctx context.Context, method string, pathOf func(string) string, contentType string, v any) (*Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return c.do(ctx, method, pathOf, http.Header{headerContentType: {contentType}}, body)
}

// statesPath is the states path of the thing.
var statesPath = thingPath("targets/thing:%s/states")

// PutState replaces the thing's state with v, a JSON object in the schema
// form ("v1"), such as map[string]any{"power": true} or a struct.
func (c *Client) PutState(ctx context.Context, v any) error {
	_, err := c.doJSON(ctx, http.MethodPut, statesPath, mediaJSON, v)
	return err
}

// PatchState merges the top-level fields of v, a JSON object, into the
// thing's schema-form state.
func (c *Client) PatchState(ctx context.Context, v any) error {
	_, err := c.doJSON(ctx, http.MethodPatch, statesPath, mediaJSON, v)
	return err
}

// PutTraitState replaces the thing's state with a trait-form ("v2") state:
// one JSON object per trait alias, such as
// map[string]any{"AirConditionerAlias": map[string]any{"power": true}}.
func (c *Client) PutTraitState(ctx context.Context, aliases map[string]any) error {
	_, err := c.doJSON(ctx, http.MethodPut, statesPath, mediaMultipleTraitState, aliases)
	return err
}

// PatchTraitState merges a trait-form state into the stored one: each
// alias's fields are merged into that alias's object, other aliases are
// kept.
func (c *Client) PatchTraitState(ctx context.Context, aliases map[string]any) error {
	_, err := c.doJSON(ctx, http.MethodPatch, statesPath, mediaMultipleTraitPatch, aliases)
	return err
}

// FirmwareVersion returns the thing's firmware version. If none is set the
// error is an *Error with status 404.
func (c *Client) FirmwareVersion(ctx context.Context) (string, error) {
	return c.getField(ctx, "firmware-version", "firmwareVersion")
}

// SetFirmwareVersion sets the thing's firmware version.
func (c *Client) SetFirmwareVersion(ctx context.Context, v string) error {
	_, err := c.doJSON(ctx, http.MethodPut, thingPath("things/%s/firmware-version"), mediaFirmwareVersion,
		map[string]string{"firmwareVersion": v})
	return err
}

// ThingType returns the thing's type. If none is set the error is an
// *Error with status 404.
func (c *Client) ThingType(ctx context.Context) (string, error) {
	return c.getField(ctx, "thing-type", "thingType")
}

// SetThingType sets the thing's type.
func (c *Client) SetThingType(ctx context.Context, v string) error {
	_, err := c.doJSON(ctx, http.MethodPut, thingPath("things/%s/thing-type"), mediaThingType,
		map[string]string{"thingType": v})
	return err
}

// getField reads {"<name>":"…"} from things/{id}/<path>.
func (c *Client) getField(ctx context.Context, path, name string) (string, error) {
	res, err := c.do(ctx, http.MethodGet, thingPath("things/%s/"+path), nil, nil)
	if err != nil {
		return "", err
	}
	var body map[string]string
	if err := json.Unmarshal(res.Body, &body); err != nil {
		return "", fmt.Errorf("GET %s: %w", path, err)
	}
	return body[name], nil
}

// lost reports whether the connection w's request went out on is gone.
func (c *Client) lost(w *waiter) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cm == nil || c.conn != w.conn
}
