package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

// endpointJSON is an MQTT endpoint as answered by onboarding (mqttEndpoint)
// and by GET …/installations/{iid}/mqtt-endpoint.
type endpointJSON struct {
	InstallationID string `json:"installationID"`
	Username       string `json:"username"`
	Password       string `json:"password"`
	MQTTTopic      string `json:"mqttTopic"`
	Host           string `json:"host"`
	PortTCP        int    `json:"portTCP"`
	PortSSL        int    `json:"portSSL"`
	PortWS         int    `json:"portWS"`
	PortWSS        int    `json:"portWSS"`
	TTL            int64  `json:"ttl"`
}

// newInstallation makes an MQTT installation of a thing with random
// credentials. The topic is also the client ID on the API broker, so it is
// at most 23 characters (the MQTT 3.1 limit). With issue, the endpoint
// password is set and returned; only its digest is kept.
func (h *Handler) newInstallation(appID, thingID string, now time.Time, issue bool) (store.Installation, string) {
	in := store.Installation{
		ID:         secret.NewID(16),
		AppID:      appID,
		ThingID:    thingID,
		DeviceType: "MQTT",
		MQTTTopic:  secret.NewID(11), // 22 hex characters
		Username:   secret.NewID(16),
		CreatedAt:  now,
	}
	var password string
	if issue {
		password = h.issueEndpoint(&in, now)
	}
	return in, password
}

// issueEndpoint gives in a new endpoint password and expiry and returns the
// password.
func (h *Handler) issueEndpoint(in *store.Installation, now time.Time) string {
	password := secret.NewToken()
	in.PasswordHash = secret.HashToken(password)
	in.ExpiresAt = now.Add(h.cfg.EndpointTTL)
	return password
}

// endpoint is the answer describing in, whose password is password.
func (h *Handler) endpoint(ctx context.Context, in store.Installation, password string) endpointJSON {
	b := h.cfg.APIBroker(ctx, in.AppID, in.ThingID)
	return endpointJSON{
		InstallationID: in.ID,
		Username:       in.Username,
		Password:       password,
		MQTTTopic:      in.MQTTTopic,
		Host:           b.Host,
		PortTCP:        b.PortTCP,
		PortSSL:        b.PortSSL,
		PortWS:         b.PortWS,
		PortWSS:        b.PortWSS,
		TTL:            int64(h.cfg.EndpointTTL / time.Second),
	}
}

// thingToken is the stored form of a new thing token.
func (h *Handler) thingToken(tok, appID, thingID string, now time.Time) store.Token {
	t := store.Token{
		Hash:      secret.HashToken(tok),
		AppID:     appID,
		Kind:      store.TokenThing,
		Subject:   thingID,
		CreatedAt: now,
	}
	if h.cfg.ThingTokenTTL > 0 {
		t.ExpiresAt = now.Add(h.cfg.ThingTokenTTL)
	}
	return t
}

// pruneInstallations keeps the thing's newest maxInstallations
// installations, always including keep (the one just created), and deletes
// the others. Failures are logged only: the onboarding itself succeeded.
func (h *Handler) pruneInstallations(r *http.Request, thingID, keep string) {
	ctx := r.Context()
	ins, err := h.store.Installations(ctx, thingID)
	if err != nil {
		h.log.Warn("list installations", keyThing, thingID, keyErr, err)
		return
	}
	others := slices.DeleteFunc(ins, func(in store.Installation) bool { return in.ID == keep })
	slices.SortStableFunc(others, func(a, b store.Installation) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(others) < maxInstallations {
		return
	}
	for _, in := range others[maxInstallations-1:] {
		if err := h.store.DeleteInstallation(ctx, in.ID); err != nil {
			h.log.Warn("delete installation", keyThing, thingID, keyErr, err)
			continue
		}
		h.endInstallation(ctx, thingID, in.ID)
	}
}

// installationRequest is the body of POST /api/apps/{app}/installations.
type installationRequest struct {
	DeviceType *string `json:"deviceType"`
	// Development is a boolean, or a string "true"/"false" as Kii's C SDK
	// sends it. It changes nothing for MQTT.
	Development json.RawMessage `json:"development"`
	// ThingID names the thing when an app admin token is used.
	ThingID *string `json:"thingID"`
}

// postInstallation creates an MQTT installation for a thing; its endpoint is
// issued by GET …/mqtt-endpoint.
func (h *Handler) postInstallation(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	if mt := mediaType(r); !isJSONMedia(mt) {
		return errUnsupportedMediaType.with("an installation is created with a JSON body")
	}
	var req installationRequest
	if err := h.readObject(w, r, &req); err != nil {
		return err
	}
	if req.DeviceType == nil || !strings.EqualFold(*req.DeviceType, "MQTT") {
		return errInvalidInput.with("deviceType must be MQTT")
	}
	if !isNull(req.Development) {
		var b bool
		var s string
		if json.Unmarshal(req.Development, &b) != nil {
			if json.Unmarshal(req.Development, &s) != nil {
				return errInvalidInput.with("development must be a boolean")
			}
			if _, err := strconv.ParseBool(s); err != nil {
				return errInvalidInput.with("development must be a boolean")
			}
		}
	}
	var thingID string
	switch p.kind {
	case store.TokenThing:
		thingID = p.subject
		if req.ThingID != nil && *req.ThingID != "" && *req.ThingID != thingID {
			return errWrongToken.with("a thing may create installations only for itself")
		}
	case store.TokenApp:
		if req.ThingID == nil || *req.ThingID == "" {
			return errInvalidInput.with("thingID is required with an app token")
		}
		thingID = *req.ThingID
		if err := h.authorizeThing(ctx, p, thingID, errThingNotFound); err != nil {
			return err
		}
	default:
		return errWrongToken.with("installations are created with a thing or app token")
	}

	in, _ := h.newInstallation(p.appID, thingID, h.cfg.Now(), false)
	if err := h.store.PutInstallation(ctx, in); err != nil {
		return fmt.Errorf("store installation: %w", err)
	}
	h.pruneInstallations(r, thingID, in.ID)
	writeJSON(w, http.StatusCreated, struct {
		InstallationID string `json:"installationID"`
	}{in.ID})
	return nil
}

// getMQTTEndpoint issues (rotates) the endpoint of an installation: a new
// password and expiry.
func (h *Handler) getMQTTEndpoint(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	if p.kind != store.TokenThing && p.kind != store.TokenApp {
		return errWrongToken.with("endpoints are issued to a thing or app token")
	}
	iid := r.PathValue("iid")
	in, err := h.store.Installation(ctx, p.appID, iid)
	if errors.Is(err, store.ErrNotFound) {
		return errInstallationNotFound.with("installation %s does not exist", iid)
	}
	if err != nil {
		return fmt.Errorf("load installation: %w", err)
	}
	if p.kind == store.TokenThing && in.ThingID != p.subject {
		return errWrongToken.with("the installation is another thing's")
	}
	password := h.issueEndpoint(&in, h.cfg.Now())
	if err := h.store.PutInstallation(ctx, in); err != nil {
		return fmt.Errorf("store installation: %w", err)
	}
	// The previous password is replaced: its connections end.
	h.endInstallation(ctx, in.ThingID, in.ID)
	ep := h.endpoint(ctx, in, password)
	w.Header()[headerMQTTTTL] = []string{strconv.FormatInt(ep.TTL, 10)}
	writeJSON(w, http.StatusOK, mqttEndpointResponse{endpointJSON: ep, MQTTTTL: ep.TTL})
	return nil
}

// mqttEndpointResponse is the answer of GET …/mqtt-endpoint: the endpoint
// with its ttl also as "X-MQTT-TTL". Kii's embedded C SDK reads the TTL from
// that body field (not from the header of the same name), and its MQTT task
// ends for good when any field it parses is missing (PROTOCOL.md §8.4). The
// onboarding answer's mqttEndpoint has no such field.
type mqttEndpointResponse struct {
	endpointJSON
	MQTTTTL int64 `json:"X-MQTT-TTL"`
}
