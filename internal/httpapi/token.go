package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

// tokenRequest is the body of POST /api/apps/{app}/oauth2/token, as JSON or
// as a form.
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// Username and Password ask for a user token (grant_type "password"
	// or absent).
	Username string `json:"username"`
	Password string `json:"password"`
}

// tokenResponse is the OAuth2 answer. id is the user ID, empty for app and
// anonymous tokens; Kii's clients expect the field.
type tokenResponse struct {
	ID          string `json:"id"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// postToken issues app admin tokens for the app key and, when the app
// allows it, anonymous tokens for any other secret (Kii's C SDK sends the
// literal "dummy", PROTOCOL.md §8.1).
func (h *Handler) postToken(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	appID := r.PathValue("app")
	var req tokenRequest
	switch mt := mediaType(r); {
	case mt == "application/x-www-form-urlencoded":
		b, err := h.readBody(w, r)
		if err != nil {
			return err
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			return errInvalidInput.with("the form body is malformed")
		}
		req = tokenRequest{GrantType: form.Get("grant_type"), ClientID: form.Get("client_id"), ClientSecret: form.Get("client_secret"),
			Username: form.Get("username"), Password: form.Get("password")}
	case isJSONMedia(mt):
		if err := h.readObject(w, r, &req); err != nil {
			return err
		}
	default:
		return errUnsupportedMediaType.with("use application/json or application/x-www-form-urlencoded")
	}

	app, err := h.store.App(ctx, appID)
	if errors.Is(err, store.ErrNotFound) {
		return errAppNotFound.with("app %s does not exist", appID)
	}
	if err != nil {
		return fmt.Errorf("load app: %w", err)
	}
	if req.Username != "" && (req.GrantType == "" || req.GrantType == "password") {
		return h.userToken(w, r, app, req)
	}
	if req.GrantType != "client_credentials" {
		return errUnsupportedGrant.with("grant_type %q is not supported; use client_credentials", req.GrantType)
	}
	if req.ClientID != app.ID {
		return errInvalidClient.with("client_id must be the app ID")
	}
	kind, err := h.checkAppKey(w, r, &app, req.ClientSecret)
	if err != nil {
		return err
	}

	now := h.cfg.Now()
	tok := secret.NewToken()
	err = h.store.PutToken(ctx, store.Token{
		Hash:      secret.HashToken(tok),
		AppID:     app.ID,
		Kind:      kind,
		ExpiresAt: now.Add(h.cfg.AppTokenTTL),
		CreatedAt: now,
	})
	if err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok,
		ExpiresIn:   int64(h.cfg.AppTokenTTL.Seconds()),
		TokenType:   "Bearer",
	})
	return nil
}

// checkAppKey decides the kind of token a client-credentials request gets:
// an app token for the app key, an anonymous token for any other secret if
// the app allows them. A wrong secret counts against the source address,
// except Kii's literal "dummy", which is neither counted nor hashed: when
// the app allows anonymous tokens it gets one at once, so that a fleet
// booting (every thing of Kii's C SDK asks with it) costs no argon2id run.
// An app key hashed below the configured cost is rehashed and stored.
func (h *Handler) checkAppKey(w http.ResponseWriter, r *http.Request, app *store.App, clientSecret string) (store.TokenKind, error) {
	guess := clientSecret != anonymousSecret
	if !guess && app.AllowAnonymous {
		return store.TokenAnonymous, nil
	}
	addrKey := addrLimitKey("app-key", r)
	if guess {
		if err := h.limitAllow(w, addrKey); err != nil {
			return "", err
		}
	}
	ok, rehash, err := h.verify.Check(r.Context(), app.KeyHash, clientSecret)
	if err != nil {
		return "", hashError(w, err)
	}
	if !ok {
		if guess {
			h.limitFail(addrKey)
		}
		if !app.AllowAnonymous {
			return "", errInvalidClient.with("wrong client_secret")
		}
		return store.TokenAnonymous, nil
	}
	if rehash != "" {
		up := *app
		up.KeyHash = rehash
		if err := h.store.PutApp(r.Context(), up); err != nil {
			// The key is right; the rehash is tried again at the next check.
			h.log.Warn("store rehashed app key", "app", app.ID, "error", err)
		}
	}
	return store.TokenApp, nil
}
