package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

// Caller says who is calling when a request arrived over MQTT. The MQTT
// transports put it in the request context with WithCaller; REST requests
// have none and authenticate with a bearer token.
type Caller struct {
	// Broker is the broker the request arrived on.
	Broker BrokerKind
	// AppID is the app of the connection: from the CONNECT on the onboarding
	// broker, from the installation on the API broker.
	AppID string
	// ThingID is, on the API broker, the thing the connection is
	// authenticated as.
	ThingID string
}

// BrokerKind names the broker a request arrived on.
type BrokerKind int

// The brokers.
const (
	// OnboardingBroker is the broker devices onboard on with app
	// credentials; its callers may only onboard.
	OnboardingBroker BrokerKind = iota + 1
	// APIBroker is the broker things connect to with the credentials of an
	// installation; its callers act as their thing.
	APIBroker
)

type callerKey struct{}

// WithCaller returns a context carrying c, for a request that arrived over
// MQTT.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// principal is who a request acts as.
type principal struct {
	kind    store.TokenKind
	appID   string
	subject string // thing (or user) ID for those kinds
}

// principal resolves who r acts as within the app of its path:
//   - on the onboarding broker, the anonymous principal of the connection's
//     app (any Authorization header is ignored);
//   - on the API broker, the connection's thing; an Authorization header, if
//     present, must be a valid token of that same thing. Its absence means
//     "the connection's thing": the CONNECT authenticated it already;
//   - over REST, the bearer token.
//
// A principal of another app than the path's is refused with WRONG_TOKEN.
func (h *Handler) principal(r *http.Request) (principal, error) {
	app := r.PathValue("app")
	var p principal
	if c, ok := callerFrom(r.Context()); ok {
		switch c.Broker {
		case OnboardingBroker:
			p = principal{kind: store.TokenAnonymous, appID: c.AppID}
		case APIBroker:
			p = principal{kind: store.TokenThing, appID: c.AppID, subject: c.ThingID}
			if auth := headerValue(r.Header, "Authorization"); auth != "" {
				t, err := h.bearer(r.Context(), auth)
				if err != nil {
					return principal{}, err
				}
				if t.kind != p.kind || t.appID != p.appID || t.subject != p.subject {
					return principal{}, errWrongToken.with("the access token is not the connection's thing's")
				}
			}
		default:
			return principal{}, errWrongToken.with("unknown broker")
		}
	} else {
		auth := headerValue(r.Header, "Authorization")
		if auth == "" {
			return principal{}, errUnauthorized
		}
		var err error
		if p, err = h.bearer(r.Context(), auth); err != nil {
			return principal{}, err
		}
	}
	if p.appID != app {
		return principal{}, errWrongToken.with("the access token is not valid for app %s", app)
	}
	return p, nil
}

// bearer resolves an Authorization header value to the principal of its
// token. One store call.
func (h *Handler) bearer(ctx context.Context, auth string) (principal, error) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(auth), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return principal{}, errUnauthorized.with("the Authorization header must be \"Bearer {token}\"")
	}
	t, err := h.store.Token(ctx, secret.HashToken(tok))
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, errWrongToken
	}
	if err != nil {
		return principal{}, fmt.Errorf("load token: %w", err)
	}
	if !t.ExpiresAt.IsZero() && !h.cfg.Now().Before(t.ExpiresAt) {
		return principal{}, errWrongToken.with("the access token has expired")
	}
	return principal{kind: t.Kind, appID: t.AppID, subject: t.Subject}, nil
}

// authorizeThing checks that p may act on thing thingID of its app. A thing
// may act on itself only, and is refused with WRONG_TOKEN for any other
// thing, existing or not. An app admin may act on any thing of its app; a
// thing that does not exist is notFound for it. A user may act on the
// things it owns, alone or through a group (see checkOwner). Nobody else may. A thing
// acting on itself costs no store call.
func (h *Handler) authorizeThing(ctx context.Context, p principal, thingID string, notFound *apiError) error {
	switch p.kind {
	case store.TokenThing:
		if p.subject != thingID {
			return errWrongToken.with("a thing may act only on itself")
		}
		return nil
	case store.TokenApp:
		_, err := h.store.Thing(ctx, p.appID, thingID)
		if errors.Is(err, store.ErrNotFound) {
			return notFound.with("thing %s does not exist", thingID)
		}
		if err != nil {
			return fmt.Errorf("load thing: %w", err)
		}
		return nil
	case store.TokenUser:
		return h.checkOwner(ctx, p, thingID)
	}
	return errWrongToken.with("this token may not act on things")
}

// loadThing is authorizeThing for handlers that need the thing itself.
func (h *Handler) loadThing(ctx context.Context, p principal, thingID string, notFound *apiError) (store.Thing, error) {
	switch p.kind {
	case store.TokenThing:
		if p.subject != thingID {
			return store.Thing{}, errWrongToken.with("a thing may act only on itself")
		}
	case store.TokenApp:
	case store.TokenUser:
		if err := h.checkOwner(ctx, p, thingID); err != nil {
			return store.Thing{}, err
		}
	default:
		return store.Thing{}, errWrongToken.with("this token may not act on things")
	}
	t, err := h.store.Thing(ctx, p.appID, thingID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Thing{}, notFound.with("thing %s does not exist", thingID)
	}
	if err != nil {
		return store.Thing{}, fmt.Errorf("load thing: %w", err)
	}
	return t, nil
}

// targetThing returns the thing ID of the {target} path value, thing:{ID}
// with the kind matched case-insensitively, as some clients write THING:.
func targetThing(r *http.Request) (string, error) {
	kind, id, ok := strings.Cut(r.PathValue("target"), ":")
	if !ok || !strings.EqualFold(kind, "thing") || id == "" {
		return "", errTargetNotFound.with("the target must be thing:{thingID}")
	}
	return id, nil
}

// targetAccess resolves the principal and the target thing of r and checks
// that the principal may act on it.
func (h *Handler) targetAccess(r *http.Request) (principal, string, error) {
	thingID, err := targetThing(r)
	if err != nil {
		return principal{}, "", err
	}
	p, err := h.principal(r)
	if err != nil {
		return principal{}, "", err
	}
	if err := h.authorizeThing(r.Context(), p, thingID, errTargetNotFound); err != nil {
		return principal{}, "", err
	}
	return p, thingID, nil
}
