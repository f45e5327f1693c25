package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

// Onboarding media types, lower case (media types are matched
// case-insensitively).
const (
	mediaOnboardingVendorByThing = "application/vnd.kii.onboardingwithvendorthingidbything+json"
	mediaOnboardingThingByThing  = "application/vnd.kii.onboardingwiththingidbything+json"
	mediaOnboardingPrefix        = "application/vnd.kii.onboarding"
)

// onboardingRequest is the body of an onboarding by thing. Unknown fields
// are ignored: real devices send more than they need to.
type onboardingRequest struct {
	VendorThingID        *string         `json:"vendorThingID"`
	ThingID              *string         `json:"thingID"`
	ThingPassword        *string         `json:"thingPassword"`
	ThingType            *string         `json:"thingType"`
	FirmwareVersion      *string         `json:"firmwareVersion"`
	LayoutPosition       *string         `json:"layoutPosition"`
	ThingProperties      json.RawMessage `json:"thingProperties"`
	DataGroupingInterval *string         `json:"dataGroupingInterval"`
}

var (
	layoutPositions       = []string{"STANDALONE", "GATEWAY", "ENDNODE"}
	dataGroupingIntervals = []string{"1_MINUTE", "15_MINUTES", "30_MINUTES", "1_HOUR", "12_HOURS"}
)

// onboardingResponse is the compact onboarding answer.
type onboardingResponse struct {
	AccessToken  string       `json:"accessToken"`
	ThingID      string       `json:"thingID"`
	MQTTEndpoint endpointJSON `json:"mqttEndpoint"`
}

// postOnboarding onboards a thing by itself: the first onboarding of a
// vendorThingID registers it, later ones check its password. Each success
// issues a fresh thing token and a fresh MQTT endpoint.
func (h *Handler) postOnboarding(w http.ResponseWriter, r *http.Request) error {
	if mt := mediaType(r); isOwnerOnboarding(mt) {
		return h.postOnboardingByOwner(w, r, mt)
	}
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	byVendor := false
	switch mt := mediaType(r); {
	case mt == mediaOnboardingVendorByThing:
		byVendor = true
	case mt == mediaOnboardingThingByThing:
	case strings.HasPrefix(mt, mediaOnboardingPrefix):
		return errUnsupportedMediaType.with("unknown onboarding content type %s", mt)
	default:
		return errUnsupportedMediaType.with("onboarding needs content type application/vnd.kii.OnboardingWithVendorThingIDByThing+json or application/vnd.kii.OnboardingWithThingIDByThing+json")
	}
	var req onboardingRequest
	if err := h.readObject(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(byVendor); err != nil {
		return err
	}

	answer, err := h.onboardThing(w, r, p, &req, byVendor)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// onboardThing registers or checks the thing of req as p and issues a
// token and an MQTT endpoint: the common part of every onboarding.
//
// A registration takes a token from the registration buckets of the source
// address and the app. A check of a known thing's password is limited per
// source address and per thing; an address that recently gave the thing's
// right password passes the thing's block (docs/security.md, "Brute
// force"). A password hashed below the configured cost is rehashed on
// success, in the same store write.
func (h *Handler) onboardThing(w http.ResponseWriter, r *http.Request, p principal, req *onboardingRequest, byVendor bool) (onboardingResponse, error) {
	ctx := r.Context()
	addr := remoteHost(r)
	var err error
	for attempt := 0; ; attempt++ {
		var thing store.Thing
		newThing, rehash := false, ""
		if byVendor {
			thing, err = h.store.ThingByVendorID(ctx, p.appID, *req.VendorThingID)
			newThing = errors.Is(err, store.ErrNotFound)
		} else {
			thing, err = h.store.Thing(ctx, p.appID, *req.ThingID)
			if errors.Is(err, store.ErrNotFound) {
				if p.kind == store.TokenThing {
					return onboardingResponse{}, errWrongToken.with("a thing may onboard only itself")
				}
				return onboardingResponse{}, errThingNotFound.with("thing %s does not exist", *req.ThingID)
			}
		}
		if err != nil && !newThing {
			return onboardingResponse{}, fmt.Errorf("load thing: %w", err)
		}
		now := h.cfg.Now()
		if newThing {
			if p.kind == store.TokenThing {
				return onboardingResponse{}, errWrongToken.with("a thing may onboard only itself")
			}
			if attempt == 0 {
				if err := h.registrationAllow(w, p.appID, addr); err != nil {
					return onboardingResponse{}, err
				}
			}
			hash, err := h.verify.Hash(ctx, *req.ThingPassword)
			if err != nil {
				return onboardingResponse{}, hashError(w, err)
			}
			thing = store.Thing{
				ID:            "th." + secret.NewID(12),
				AppID:         p.appID,
				VendorThingID: *req.VendorThingID,
				PasswordHash:  hash,
				CreatedAt:     now,
			}
		} else {
			if p.kind == store.TokenThing && p.subject != thing.ID {
				return onboardingResponse{}, errWrongToken.with("a thing may onboard only itself")
			}
			thingKey, addrKey := thingLimitKey(p.appID, "id", thing.ID), addrLimitKey("thing-password", r)
			if err := h.limitAllow(w, addrKey); err != nil {
				return onboardingResponse{}, err
			}
			if err := h.limitAllowFrom(w, thingKey, addr); err != nil {
				return onboardingResponse{}, err
			}
			ok, newHash, err := h.verify.Check(ctx, thing.PasswordHash, *req.ThingPassword)
			if err != nil {
				return onboardingResponse{}, hashError(w, err)
			}
			if !ok {
				h.limitFail(thingKey, addrKey)
				return onboardingResponse{}, errWrongPassword
			}
			h.limitSucceedFrom(thingKey, addr)
			rehash = newHash
		}
		req.apply(&thing)
		thing.ModifiedAt = now

		in, password := h.newInstallation(p.appID, thing.ID, now, true)
		tok := secret.NewToken()
		o := store.Onboarding{
			Thing:        thing,
			NewThing:     newThing,
			Installation: in,
			Token:        h.thingToken(tok, p.appID, thing.ID, now),
			PasswordHash: rehash,
		}
		err = h.store.SaveOnboarding(ctx, o)
		if newThing && errors.Is(err, store.ErrConflict) && attempt < 3 {
			// A concurrent first onboarding of the same vendorThingID won
			// the race: go again as an onboarding of the existing thing.
			h.log.Debug("first onboarding lost a race; retrying", keyThing, thing.ID)
			continue
		}
		if err != nil {
			return onboardingResponse{}, fmt.Errorf("save onboarding: %w", err)
		}
		if newThing {
			// The registering address is the thing's first trusted one.
			h.limitSucceedFrom(thingLimitKey(p.appID, "id", thing.ID), addr)
		}
		h.pruneInstallations(r, thing.ID, in.ID)
		h.pruneThingTokens(r, thing.ID)
		return onboardingResponse{
			AccessToken:  tok,
			ThingID:      thing.ID,
			MQTTEndpoint: h.endpoint(r.Context(), in, password),
		}, nil
	}
}

// validate checks the fields of an onboarding request, their sizes
// included (fieldlimits.go).
func (req *onboardingRequest) validate(byVendor bool) error {
	if err := req.checkSizes(onboardingFieldNames); err != nil {
		return err
	}
	if byVendor {
		if req.VendorThingID == nil || *req.VendorThingID == "" {
			return errInvalidInput.with("vendorThingID is required")
		}
	} else if req.ThingID == nil || *req.ThingID == "" {
		return errInvalidInput.with("thingID is required")
	}
	if req.ThingPassword == nil || *req.ThingPassword == "" {
		return errInvalidInput.with("thingPassword is required")
	}
	if req.LayoutPosition != nil {
		v := strings.ToUpper(*req.LayoutPosition)
		if !slices.Contains(layoutPositions, v) {
			return errInvalidInput.with("layoutPosition must be one of %s", strings.Join(layoutPositions, ", "))
		}
		req.LayoutPosition = &v
	}
	if req.DataGroupingInterval != nil {
		v := strings.ToUpper(*req.DataGroupingInterval)
		if !slices.Contains(dataGroupingIntervals, v) {
			return errInvalidInput.with("dataGroupingInterval must be one of %s", strings.Join(dataGroupingIntervals, ", "))
		}
		req.DataGroupingInterval = &v
	}
	if req.ThingProperties != nil && !isNull(req.ThingProperties) && !isObject(req.ThingProperties) {
		return errInvalidInput.with("thingProperties must be an object")
	}
	return nil
}

// onboardingFieldNames are the JSON names of the bounded fields of an
// onboarding request, in the order vendorThingID, thingID, thingPassword,
// thingType, firmwareVersion, thingProperties; end-node onboarding names
// them differently.
var onboardingFieldNames = [6]string{"vendorThingID", "thingID", "thingPassword", "thingType", "firmwareVersion", "thingProperties"}

// checkSizes refuses a field beyond its bound, calling it by its name in
// names.
func (req *onboardingRequest) checkSizes(names [6]string) error {
	fields := []struct {
		name string
		v    *string
		max  int
	}{
		{names[0], req.VendorThingID, maxIDLen},
		{names[1], req.ThingID, maxIDLen},
		{names[2], req.ThingPassword, maxThingPasswordLen},
		{names[3], req.ThingType, maxShortFieldLen},
		{names[4], req.FirmwareVersion, maxShortFieldLen},
	}
	for _, f := range fields {
		if f.v == nil {
			continue
		}
		if err := checkLen(f.name, *f.v, f.max); err != nil {
			return err
		}
	}
	if len(req.ThingProperties) > maxPropertiesBytes {
		return errInvalidInput.with("%s is longer than %d bytes", names[5], maxPropertiesBytes)
	}
	return checkNumberRange(req.ThingProperties)
}

// apply copies the optional fields that were given onto t.
func (req *onboardingRequest) apply(t *store.Thing) {
	if req.ThingType != nil {
		t.ThingType = *req.ThingType
	}
	if req.FirmwareVersion != nil {
		t.FirmwareVersion = *req.FirmwareVersion
	}
	if req.LayoutPosition != nil {
		t.LayoutPosition = *req.LayoutPosition
	}
	if req.DataGroupingInterval != nil {
		t.DataGroupingInterval = *req.DataGroupingInterval
	}
	if req.ThingProperties != nil {
		if isNull(req.ThingProperties) {
			t.Properties = nil
		} else {
			t.Properties = compact(req.ThingProperties)
		}
	}
}
