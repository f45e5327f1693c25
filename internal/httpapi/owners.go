package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/thingif/thingif/internal/store"
)

// Onboarding by owner media types, lower case.
const (
	mediaOnboardingVendorByOwner = "application/vnd.kii.onboardingwithvendorthingidbyowner+json"
	mediaOnboardingThingByOwner  = "application/vnd.kii.onboardingwiththingidbyowner+json"
	mediaOnboardingEndNode       = "application/vnd.kii.onboardingendnodewithgatewaythingid+json"
)

func isOwnerOnboarding(mt string) bool {
	return mt == mediaOnboardingVendorByOwner || mt == mediaOnboardingThingByOwner || mt == mediaOnboardingEndNode
}

// ownerPrincipal resolves who onboards by owner. Over REST, the bearer
// token. On the API broker, an Authorization header may carry a token of
// any kind of the connection's app (an owner onboarding a thing through a
// gateway's connection, say); without one the caller is the connection's
// thing, which may onboard end nodes behind itself. The onboarding broker
// serves onboarding by thing only.
func (h *Handler) ownerPrincipal(r *http.Request) (principal, error) {
	c, ok := callerFrom(r.Context())
	if !ok {
		return h.principal(r)
	}
	if c.Broker != APIBroker {
		return principal{}, errWrongToken.with("the onboarding broker serves onboarding by thing only")
	}
	auth := headerValue(r.Header, "Authorization")
	if auth == "" {
		return h.principal(r)
	}
	p, err := h.bearer(r.Context(), auth)
	if err != nil {
		return principal{}, err
	}
	if p.appID != c.AppID || p.appID != r.PathValue("app") {
		return principal{}, errWrongToken.with("the access token is not valid for app %s", r.PathValue("app"))
	}
	return p, nil
}

// checkOwnerAuthority checks that p may make owner the owner of a thing:
// the app admin may name anyone, a user itself or a group it is in.
func (h *Handler) checkOwnerAuthority(r *http.Request, p principal, owner string) error {
	if err := checkLen("owner", owner, maxIDLen); err != nil {
		return err
	}
	if !store.ValidOwner(owner) {
		return errInvalidInput.with(`owner must be "USER:{userID}" or "GROUP:{groupID}"`)
	}
	switch p.kind {
	case store.TokenApp:
		return nil
	case store.TokenUser:
		ok, err := h.isOwner(r.Context(), p, owner)
		if err != nil {
			return err
		}
		if !ok {
			return errWrongToken.with("a user may name only itself or its groups as owner")
		}
		return nil
	}
	return errWrongToken.with("onboarding by owner needs a user or app token")
}

// normalizeOwner writes the owner kind in upper case.
func normalizeOwner(owner string) string {
	kind, id, _ := strings.Cut(owner, ":")
	return strings.ToUpper(kind) + ":" + id
}

// ownerOnboardingRequest is the body of an onboarding by owner.
type ownerOnboardingRequest struct {
	onboardingRequest
	Owner string `json:"owner"`
}

// endNodeFieldNames name the bounded fields of an end-node onboarding, in
// the order of onboardingFieldNames (it has no thingID field).
var endNodeFieldNames = [6]string{"endNodeVendorThingID", "thingID", "endNodePassword", "endNodeThingType", "endNodeFirmwareVersion", "endNodeThingProperties"}

// endNodeRequest is the body of OnboardingEndNodeWithGatewayThingID.
type endNodeRequest struct {
	GatewayThingID         string          `json:"gatewayThingID"`
	EndNodeVendorThingID   *string         `json:"endNodeVendorThingID"`
	EndNodePassword        *string         `json:"endNodePassword"`
	EndNodeThingType       *string         `json:"endNodeThingType"`
	EndNodeFirmwareVersion *string         `json:"endNodeFirmwareVersion"`
	EndNodeThingProperties json.RawMessage `json:"endNodeThingProperties"`
	Owner                  string          `json:"owner"`
}

// postOnboardingByOwner onboards a thing for an owner (a user or group, or
// the app admin naming one), or an end node behind a gateway. The thing is
// registered or its password checked as in onboarding by thing, then the
// owner is recorded: a thing has one owner, and another owner's onboarding
// is 409 THING_OWNERSHIP_ALREADY_EXISTS.
func (h *Handler) postOnboardingByOwner(w http.ResponseWriter, r *http.Request, mt string) error {
	p, err := h.ownerPrincipal(r)
	if err != nil {
		return err
	}
	if mt == mediaOnboardingEndNode {
		return h.onboardEndNode(w, r, p)
	}
	var req ownerOnboardingRequest
	if err := h.readObject(w, r, &req); err != nil {
		return err
	}
	byVendor := mt == mediaOnboardingVendorByOwner
	if err := req.validate(byVendor); err != nil {
		return err
	}
	if err := h.checkOwnerAuthority(r, p, req.Owner); err != nil {
		return err
	}
	owner := normalizeOwner(req.Owner)
	// Refuse before issuing anything when another owner holds the thing.
	var existing store.Thing
	if byVendor {
		existing, err = h.store.ThingByVendorID(r.Context(), p.appID, *req.VendorThingID)
	} else {
		existing, err = h.store.Thing(r.Context(), p.appID, *req.ThingID)
	}
	if err == nil {
		if err := h.checkFreeFor(r, existing.ID, owner); err != nil {
			return err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("load thing: %w", err)
	}
	admin := principal{kind: store.TokenApp, appID: p.appID}
	answer, err := h.onboardThing(w, r, admin, &req.onboardingRequest, byVendor)
	if err != nil {
		return err
	}
	if err := h.addOwner(r, answer.ThingID, owner); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// checkFreeFor refuses a thing owned by someone other than owner.
func (h *Handler) checkFreeFor(r *http.Request, thingID, owner string) error {
	old, err := h.store.ThingOwner(r.Context(), thingID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("load owner: %w", err)
	case old != owner:
		return errOwnershipExists.with("thing %s has another owner", thingID)
	}
	return nil
}

func (h *Handler) addOwner(r *http.Request, thingID, owner string) error {
	err := h.store.AddOwner(r.Context(), r.PathValue("app"), thingID, owner, h.cfg.Now())
	if errors.Is(err, store.ErrConflict) {
		return errOwnershipExists.with("thing %s has another owner", thingID)
	}
	if err != nil {
		return fmt.Errorf("add owner: %w", err)
	}
	return nil
}

// onboardEndNode onboards an end node behind a gateway: by an owner, or
// by the gateway itself (its thing token or its API broker connection).
// The answer is {"endNodeThingID","accessToken"}.
func (h *Handler) onboardEndNode(w http.ResponseWriter, r *http.Request, p principal) error {
	ctx := r.Context()
	var req endNodeRequest
	if err := h.readObject(w, r, &req); err != nil {
		return err
	}
	if err := checkLen("gatewayThingID", req.GatewayThingID, maxIDLen); err != nil {
		return err
	}
	if err := checkLen("owner", req.Owner, maxIDLen); err != nil {
		return err
	}
	switch {
	case req.GatewayThingID == "":
		return errInvalidInput.with("gatewayThingID is required")
	case req.EndNodeVendorThingID == nil || *req.EndNodeVendorThingID == "":
		return errInvalidInput.with("endNodeVendorThingID is required")
	case req.EndNodePassword == nil || *req.EndNodePassword == "":
		return errInvalidInput.with("endNodePassword is required")
	}
	if p.kind == store.TokenThing {
		if p.subject != req.GatewayThingID {
			return errWrongToken.with("a gateway may onboard end nodes behind itself only")
		}
	} else if req.Owner != "" || p.kind != store.TokenApp {
		if err := h.checkOwnerAuthority(r, p, req.Owner); err != nil {
			return err
		}
	}
	gw, err := h.loadThing(ctx, p, req.GatewayThingID, errThingNotFound)
	if err != nil {
		return err
	}
	if gw.LayoutPosition != "GATEWAY" {
		return errInvalidInput.with("thing %s is not a gateway", gw.ID)
	}
	owner := ""
	if req.Owner != "" {
		if !store.ValidOwner(req.Owner) {
			return errInvalidInput.with(`owner must be "USER:{userID}" or "GROUP:{groupID}"`)
		}
		owner = normalizeOwner(req.Owner)
		if existing, err := h.store.ThingByVendorID(ctx, p.appID, *req.EndNodeVendorThingID); err == nil {
			if err := h.checkFreeFor(r, existing.ID, owner); err != nil {
				return err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("load thing: %w", err)
		}
	}
	endNode := "ENDNODE"
	or := onboardingRequest{
		VendorThingID: req.EndNodeVendorThingID, ThingPassword: req.EndNodePassword,
		ThingType: req.EndNodeThingType, FirmwareVersion: req.EndNodeFirmwareVersion,
		ThingProperties: req.EndNodeThingProperties, LayoutPosition: &endNode,
	}
	if err := or.checkSizes(endNodeFieldNames); err != nil {
		return err
	}
	if err := or.validate(true); err != nil {
		return err
	}
	admin := principal{kind: store.TokenApp, appID: p.appID}
	answer, err := h.onboardThing(w, r, admin, &or, true)
	if err != nil {
		return err
	}
	if err := h.store.PutEndNode(ctx, store.EndNode{ThingID: answer.ThingID, GatewayID: gw.ID, ModifiedAt: h.cfg.Now()}); err != nil {
		return fmt.Errorf("store end node: %w", err)
	}
	if owner != "" {
		if err := h.addOwner(r, answer.ThingID, owner); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, struct {
		EndNodeThingID string `json:"endNodeThingID"`
		AccessToken    string `json:"accessToken"`
	}{answer.ThingID, answer.AccessToken})
	return nil
}

// endNodeAccess loads the end node of the path's gateway for p: the gateway
// itself, the app admin or the gateway's owner.
func (h *Handler) endNodeAccess(r *http.Request) (store.EndNode, error) {
	p, err := h.principal(r)
	if err != nil {
		return store.EndNode{}, err
	}
	gwID, enID := r.PathValue("thing"), r.PathValue("endnode")
	if err := h.authorizeThing(r.Context(), p, gwID, errThingNotFound); err != nil {
		return store.EndNode{}, err
	}
	e, err := h.store.EndNode(r.Context(), enID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && e.GatewayID != gwID) {
		return store.EndNode{}, errEndNodeNotFound.with("thing %s is not an end node of gateway %s", enID, gwID)
	}
	if err != nil {
		return store.EndNode{}, fmt.Errorf("load end node: %w", err)
	}
	return e, nil
}

// putEndNodeConnection records whether an end node is connected to its
// gateway: {"online":bool}. 204.
func (h *Handler) putEndNodeConnection(w http.ResponseWriter, r *http.Request) error {
	e, err := h.endNodeAccess(r)
	if err != nil {
		return err
	}
	if mt := mediaType(r); !isJSONMedia(mt) {
		return errUnsupportedMediaType.with("the connection is sent as JSON")
	}
	var req struct {
		Online *bool `json:"online"`
	}
	if err := h.readStrict(w, r, &req); err != nil {
		return err
	}
	if req.Online == nil {
		return errInvalidInput.with("online (a boolean) is required")
	}
	e.Online, e.ModifiedAt = *req.Online, h.cfg.Now()
	if err := h.store.PutEndNode(r.Context(), e); err != nil {
		return fmt.Errorf("store end node: %w", err)
	}
	writeNoContent(w)
	return nil
}

// getEndNodeConnection answers {"online":bool}.
func (h *Handler) getEndNodeConnection(w http.ResponseWriter, r *http.Request) error {
	e, err := h.endNodeAccess(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Online bool `json:"online"`
	}{e.Online})
	return nil
}
