package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/thingif/thingif/internal/store"
)

// readStrict reads the body, a JSON object, into v and refuses unknown
// fields with 400 INVALID_INPUT_DATA naming the field: the app-side
// endpoints are written against this API, not by embedded stacks.
func (h *Handler) readStrict(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(b, v, errInvalidInput)
}

// decodeStrict is decodeObject refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any, bad *apiError) error {
	if err := checkObject(b, bad); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return bad.with("unknown field %s", f)
		}
		return jsonError(err, bad)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad.with("the body must hold one JSON object")
	}
	return nil
}

// thingJSON is a thing as answered by GET …/things/{thingID}.
type thingJSON struct {
	ThingID              string          `json:"thingID"`
	VendorThingID        string          `json:"vendorThingID"`
	ThingType            string          `json:"thingType,omitempty"`
	FirmwareVersion      string          `json:"firmwareVersion,omitempty"`
	LayoutPosition       string          `json:"layoutPosition"`
	ThingProperties      json.RawMessage `json:"thingProperties,omitempty"`
	DataGroupingInterval string          `json:"dataGroupingInterval,omitempty"`
	Owner                string          `json:"owner,omitempty"`
	Created              int64           `json:"created"`
	Modified             int64           `json:"modified"`
}

func toThingJSON(t store.Thing, owner string) thingJSON {
	lp := t.LayoutPosition
	if lp == "" {
		lp = "STANDALONE"
	}
	return thingJSON{ThingID: t.ID, VendorThingID: t.VendorThingID, ThingType: t.ThingType, FirmwareVersion: t.FirmwareVersion,
		LayoutPosition: lp, ThingProperties: t.Properties, DataGroupingInterval: t.DataGroupingInterval, Owner: owner,
		Created: t.CreatedAt.UnixMilli(), Modified: t.ModifiedAt.UnixMilli()}
}

// vendorPrefix selects a thing by vendorThingID in /things/{thing}.
const vendorPrefix = "VENDOR_THING_ID:"

// pathThing loads the thing of the {thing} path value for p: a thing ID,
// or VENDOR_THING_ID:{vendorThingID}.
func (h *Handler) pathThing(r *http.Request, p principal) (store.Thing, error) {
	id := r.PathValue("thing")
	if len(id) > len(vendorPrefix) && strings.EqualFold(id[:len(vendorPrefix)], vendorPrefix) {
		vid := id[len(vendorPrefix):]
		t, err := h.store.ThingByVendorID(r.Context(), p.appID, vid)
		if errors.Is(err, store.ErrNotFound) {
			if p.kind != store.TokenApp {
				return store.Thing{}, errWrongToken.with("no thing with vendorThingID %s is yours", vid)
			}
			return store.Thing{}, errThingNotFound.with("no thing has vendorThingID %s", vid)
		}
		if err != nil {
			return store.Thing{}, fmt.Errorf("load thing: %w", err)
		}
		id = t.ID
	}
	return h.loadThing(r.Context(), p, id, errThingNotFound)
}

// getThing answers a thing by ID or vendorThingID, to itself, its owner or
// the app admin.
func (h *Handler) getThing(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	t, err := h.pathThing(r, p)
	if err != nil {
		return err
	}
	owner, err := h.store.ThingOwner(r.Context(), t.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("load owner: %w", err)
	}
	writeJSON(w, http.StatusOK, toThingJSON(t, owner))
	return nil
}

// maxThingSearch bounds a things search string (vendor thing IDs are
// shorter still).
const maxThingSearch = 256

// listThings answers a page of the app's things (app admin only), in
// creation order: {"things":[…],"nextPaginationKey"}. ?search= keeps the
// things whose ID or vendor thing ID contains it (ASCII case ignored).
func (h *Handler) listThings(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	if p.kind != store.TokenApp {
		return errWrongToken.with("the things of an app are listed with an app token")
	}
	limit, key, err := pageParams(r)
	if err != nil {
		return err
	}
	search := r.URL.Query().Get("search")
	if len(search) > maxThingSearch {
		return errInvalidInput.with("search is at most %d bytes", maxThingSearch)
	}
	things, next, err := h.store.Things(r.Context(), p.appID, search, key, limit)
	if err != nil {
		return listError("things", err)
	}
	out := struct {
		Things            []thingJSON `json:"things"`
		NextPaginationKey string      `json:"nextPaginationKey,omitempty"`
	}{Things: make([]thingJSON, 0, len(things)), NextPaginationKey: next}
	for _, t := range things {
		out.Things = append(out.Things, toThingJSON(t, ""))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// pageParams reads bestEffortLimit (default 10, at most 100) and
// paginationKey from the query.
func pageParams(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	limit := defaultCommandLimit
	if s := q.Get("bestEffortLimit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return 0, "", errInvalidInput.with("bestEffortLimit must be a positive integer")
		}
		limit = min(n, maxCommandLimit)
	}
	return limit, q.Get("paginationKey"), nil
}

// getThingProperties answers the thing's thingProperties object ({} when
// none were set).
func (h *Handler) getThingProperties(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	t, err := h.pathThing(r, p)
	if err != nil {
		return err
	}
	props := t.Properties
	if isNull(props) {
		props = json.RawMessage(`{}`)
	}
	writeJSON(w, http.StatusOK, props)
	return nil
}

// putThingProperties replaces the thing's thingProperties with the body,
// a JSON object. 204.
func (h *Handler) putThingProperties(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	t, err := h.pathThing(r, p)
	if err != nil {
		return err
	}
	if mt := mediaType(r); !isJSONMedia(mt) {
		return errUnsupportedMediaType.with("thing properties are a JSON object")
	}
	b, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	if len(b) > maxPropertiesBytes {
		return errInvalidInput.with("thingProperties is longer than %d bytes", maxPropertiesBytes)
	}
	var obj map[string]json.RawMessage
	if err := decodeObject(b, &obj, errInvalidInput); err != nil {
		return err
	}
	if err := checkNumberRange(b); err != nil {
		return err
	}
	t.Properties = compact(b)
	t.ModifiedAt = h.cfg.Now()
	if err := h.store.UpdateThing(r.Context(), t); err != nil {
		return fmt.Errorf("update thing: %w", err)
	}
	writeNoContent(w)
	return nil
}

// mediaVendorThingIDUpdate is the content type Kii's SDKs send with PUT
// …/things/{thingID}/vendor-thing-id, lower case.
const mediaVendorThingIDUpdate = "application/vnd.kii.vendorthingidupdaterequest+json"

// putVendorThingID changes the thing's vendorThingID and, when _password is
// given, its password, from {"_vendorThingID":"…","_password":"…"}. A
// vendorThingID another thing of the app has is 409 THING_ALREADY_EXISTS.
// Tokens and endpoints already issued keep working. 204.
func (h *Handler) putVendorThingID(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	t, err := h.loadThing(ctx, p, r.PathValue("thing"), errThingNotFound)
	if err != nil {
		return err
	}
	if mt := mediaType(r); mt != "" && mt != contentTypeJSON && mt != mediaVendorThingIDUpdate {
		return errUnsupportedMediaType.with("vendor-thing-id takes application/json or application/vnd.kii.VendorThingIDUpdateRequest+json")
	}
	var req struct {
		VendorThingID *string `json:"_vendorThingID"`
		Password      *string `json:"_password"`
	}
	if err := h.readObject(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.VendorThingID == nil || *req.VendorThingID == "":
		return errInvalidInput.with("_vendorThingID must be a non-empty string")
	case req.Password != nil && *req.Password == "":
		return errInvalidInput.with("_password must not be empty when given")
	}
	if err := checkLen("_vendorThingID", *req.VendorThingID, maxIDLen); err != nil {
		return err
	}
	if req.Password != nil {
		if err := checkLen("_password", *req.Password, maxThingPasswordLen); err != nil {
			return err
		}
	}
	u := store.VendorThingIDUpdate{AppID: t.AppID, ThingID: t.ID, VendorThingID: *req.VendorThingID, ModifiedAt: h.cfg.Now()}
	if req.Password != nil {
		if u.PasswordHash, err = h.verify.Hash(ctx, *req.Password); err != nil {
			return hashError(w, err)
		}
	}
	switch err := h.store.UpdateVendorThingID(ctx, u); {
	case errors.Is(err, store.ErrConflict):
		return errThingExists.with("another thing of the app has vendorThingID %s", u.VendorThingID)
	case errors.Is(err, store.ErrNotFound):
		return errThingNotFound.with("thing %s does not exist", t.ID)
	case err != nil:
		return fmt.Errorf("update vendorThingID: %w", err)
	}
	writeNoContent(w)
	return nil
}
