package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/thingif/thingif/internal/store"
)

// thingField is a single string field of a thing with its own endpoint
// under /things/{thingID}: firmware-version, thing-type, and (read only)
// vendor-thing-id.
type thingField struct {
	name     string // JSON field name
	media    string // the PUT media type, lower case
	notFound *apiError
	get      func(store.Thing) string
	set      func(*store.Thing, string)
}

var (
	firmwareVersionField = thingField{
		name:     "firmwareVersion",
		media:    "application/vnd.kii.thingfirmwareversionupdaterequest+json",
		notFound: errFirmwareVersionNotFound,
		get:      func(t store.Thing) string { return t.FirmwareVersion },
		set:      func(t *store.Thing, v string) { t.FirmwareVersion = v },
	}
	// vendorThingIDField is read here; it is written by putVendorThingID,
	// which also takes a password and answers a taken ID. A thing always
	// has one, so notFound is never answered. Kii's SDKs call it at
	// /api/apps/{app}/things/{thingID}/vendor-thing-id; it is served under
	// /thing-if/apps/{app}/ too.
	vendorThingIDField = thingField{
		name:     "_vendorThingID",
		notFound: errThingNotFound,
		get:      func(t store.Thing) string { return t.VendorThingID },
	}
	thingTypeField = thingField{
		name:     "thingType",
		media:    "application/vnd.kii.thingtypeupdaterequest+json",
		notFound: errThingTypeNotFound,
		get:      func(t store.Thing) string { return t.ThingType },
		set:      func(t *store.Thing, v string) { t.ThingType = v },
	}
)

// getThingField answers {"<name>":"…"}, or the field's not-found error
// while it is unset.
func (h *Handler) getThingField(f thingField) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := h.principal(r)
		if err != nil {
			return err
		}
		t, err := h.loadThing(r.Context(), p, r.PathValue("thing"), errThingNotFound)
		if err != nil {
			return err
		}
		v := f.get(t)
		if v == "" {
			return f.notFound
		}
		writeJSON(w, http.StatusOK, map[string]string{f.name: v})
		return nil
	}
}

// putThingField sets the field from {"<name>":"…"} and answers 204.
func (h *Handler) putThingField(f thingField) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := h.principal(r)
		if err != nil {
			return err
		}
		t, err := h.loadThing(r.Context(), p, r.PathValue("thing"), errThingNotFound)
		if err != nil {
			return err
		}
		if mt := mediaType(r); mt != "" && mt != contentTypeJSON && mt != f.media {
			return errUnsupportedMediaType.with("%s takes application/json or its update request type", f.name)
		}
		var body map[string]json.RawMessage
		if err := h.readObject(w, r, &body); err != nil {
			return err
		}
		var v string
		if raw, ok := body[f.name]; !ok || json.Unmarshal(raw, &v) != nil || v == "" {
			return errInvalidInput.with("%s must be a non-empty string", f.name)
		}
		if err := checkLen(f.name, v, maxShortFieldLen); err != nil {
			return err
		}
		f.set(&t, v)
		t.ModifiedAt = h.cfg.Now()
		if err := h.store.UpdateThing(r.Context(), t); err != nil {
			return fmt.Errorf("update thing: %w", err)
		}
		writeNoContent(w)
		return nil
	}
}
