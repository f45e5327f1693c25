package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// State media types, lower case.
const (
	mediaMultipleTraitState      = "application/vnd.kii.multipletraitstate+json"
	mediaMultipleTraitStatePatch = "application/vnd.kii.multipletraitstatepatch+json"
	mediaStateBulkUpload         = "application/vnd.kii.statebulkuploadrequest+json"
	mediaStatePatchBulkUpload    = "application/vnd.kii.statepatchbulkuploadrequest+json"
)

// writeStates serves PUT and PATCH …/states: a v1 object (application/json
// or no content type) stored under store.V1Alias, or a v2 alias→object map.
// PUT replaces the whole state, PATCH merges into it. Two store calls for a
// thing (token, write), none more.
func (h *Handler) writeStates(w http.ResponseWriter, r *http.Request) error {
	_, thingID, err := h.targetAccess(r)
	if err != nil {
		return err
	}
	mode, multi, multiName := store.StateReplace, mediaMultipleTraitState, "application/vnd.kii.MultipleTraitState+json"
	if r.Method == http.MethodPatch {
		mode, multi, multiName = store.StateMerge, mediaMultipleTraitStatePatch, "application/vnd.kii.MultipleTraitStatePatch+json"
	}
	var v2 bool
	switch mt := mediaType(r); mt {
	case "", contentTypeJSON:
	case multi:
		v2 = true
	default:
		return errUnsupportedMediaType.with("%s …/states takes application/json or %s", r.Method, multiName)
	}
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	var aliases map[string]json.RawMessage
	if v2 {
		if aliases, err = decodeAliases(body); err != nil {
			return err
		}
	} else {
		if err := checkObject(body, errInvalidInput); err != nil {
			return err
		}
		obj, err := store.CompactObject(body)
		if err != nil {
			var m map[string]json.RawMessage // for the precise message
			if derr := decodeObject(body, &m, errInvalidInput); derr != nil {
				return derr
			}
			return errInvalidInput.with("invalid JSON: %v", err)
		}
		aliases = map[string]json.RawMessage{store.V1Alias: obj}
	}
	err = h.store.WriteStates(r.Context(), store.StateWrite{ThingID: thingID, Aliases: aliases, Mode: mode, At: h.cfg.Now()})
	if err != nil {
		return fmt.Errorf("write states: %w", err)
	}
	h.stateChanged(r, thingID)
	writeNoContent(w)
	return nil
}

// decodeAliases decodes a v2 state: an object whose members are objects
// keyed by non-empty trait aliases. The objects are compacted.
func decodeAliases(body []byte) (map[string]json.RawMessage, error) {
	var aliases map[string]json.RawMessage
	if err := decodeObject(body, &aliases, errInvalidInput); err != nil {
		return nil, err
	}
	return checkAliases(aliases, "")
}

// checkAliases checks and compacts a decoded v2 state; where prefixes field
// names in error messages.
func checkAliases(aliases map[string]json.RawMessage, where string) (map[string]json.RawMessage, error) {
	if aliases == nil {
		return nil, errInvalidInput.with("%sthe state must be an object", where)
	}
	for alias, obj := range aliases {
		if alias == "" {
			return nil, errInvalidInput.with("%sa trait alias must not be empty", where)
		}
		if !isObject(obj) {
			return nil, errInvalidInput.with("%sthe state of alias %q must be an object", where, alias)
		}
		c, err := store.CompactObject(obj) // refuses numbers a float64 cannot hold
		if err != nil {
			return nil, errInvalidInput.with("%sthe state of alias %q: %v", where, alias, err)
		}
		aliases[alias] = c
	}
	return aliases, nil
}

// bulkRequest is the body of POST …/states-bulk, as Kii's embedded SDK
// sends it: {"states":[{"generatedAt":ms,"payload":{alias:{…}}}]}. The
// names thingif invented before Kii's were known, timestamp and state, are
// accepted as aliases of generatedAt and payload. generatedAt is optional
// (the time of the request when absent).
type bulkRequest struct {
	States []bulkItem `json:"states"`
}

// bulkItem is one item of a bulk upload; see bulkRequest.
type bulkItem struct {
	GeneratedAt *int64                     `json:"generatedAt"`
	Timestamp   *int64                     `json:"timestamp"`
	Payload     map[string]json.RawMessage `json:"payload"`
	State       map[string]json.RawMessage `json:"state"`
}

// write checks the item (the i-th) and returns its write: at is the time
// of the item, now when it has none.
func (it bulkItem) write(i int, thingID string, mode store.StateMode, now time.Time) (store.StateWrite, error) {
	if it.GeneratedAt != nil && it.Timestamp != nil {
		return store.StateWrite{}, errInvalidInput.with("states[%d] has generatedAt and timestamp; give one", i)
	}
	if it.Payload != nil && it.State != nil {
		return store.StateWrite{}, errInvalidInput.with("states[%d] has payload and state; give one", i)
	}
	ms, aliases := it.GeneratedAt, it.Payload
	if ms == nil {
		ms = it.Timestamp
	}
	if aliases == nil {
		aliases = it.State
	}
	at := now
	if ms != nil {
		if *ms < 0 {
			return store.StateWrite{}, errInvalidInput.with("states[%d].generatedAt must not be negative", i)
		}
		at = time.UnixMilli(*ms)
	}
	aliases, err := checkAliases(aliases, fmt.Sprintf("states[%d].payload: ", i))
	if err != nil {
		return store.StateWrite{}, err
	}
	return store.StateWrite{ThingID: thingID, Aliases: aliases, Mode: mode, At: at}, nil
}

// postStatesBulk writes several v2 states in generatedAt order, oldest
// first, so that the newest is what remains. With
// StateBulkUploadRequest (or plain JSON) each item replaces the state as a
// PUT would; with StatePatchBulkUploadRequest each is merged into it as a
// PATCH would. All items are checked before any is written, and the
// triggers run after each item, as after a single upload.
func (h *Handler) postStatesBulk(w http.ResponseWriter, r *http.Request) error {
	_, thingID, err := h.targetAccess(r)
	if err != nil {
		return err
	}
	var mode store.StateMode
	switch mt := mediaType(r); mt {
	case mediaStateBulkUpload, contentTypeJSON, "":
		mode = store.StateReplace
	case mediaStatePatchBulkUpload:
		mode = store.StateMerge
	default:
		return errUnsupportedMediaType.with("states-bulk takes application/vnd.kii.StateBulkUploadRequest+json or application/vnd.kii.StatePatchBulkUploadRequest+json")
	}
	var req bulkRequest
	if err := h.readObject(w, r, &req); err != nil {
		return err
	}
	if len(req.States) == 0 {
		return errInvalidInput.with("states must be a non-empty array")
	}
	now := h.cfg.Now()
	writes := make([]store.StateWrite, 0, len(req.States))
	for i, item := range req.States {
		sw, err := item.write(i, thingID, mode, now)
		if err != nil {
			return err
		}
		writes = append(writes, sw)
	}
	slices.SortStableFunc(writes, func(a, b store.StateWrite) int { return a.At.Compare(b.At) })
	for _, sw := range writes {
		if err := h.store.WriteStates(r.Context(), sw); err != nil {
			return fmt.Errorf("write states: %w", err)
		}
		h.stateChanged(r, thingID)
	}
	writeNoContent(w)
	return nil
}

// getStates answers the thing's state: the v1 object if that is what it
// uploaded, else {alias:{…},…} (a v1 object next to aliases, which only
// mixing forms can make, is left out).
func (h *Handler) getStates(w http.ResponseWriter, r *http.Request) error {
	_, thingID, err := h.targetAccess(r)
	if err != nil {
		return err
	}
	states, err := h.store.States(r.Context(), thingID)
	if err != nil {
		return fmt.Errorf("load states: %w", err)
	}
	if len(states) == 1 && states[0].Alias == store.V1Alias {
		writeJSON(w, http.StatusOK, states[0].Body)
		return nil
	}
	out := make(map[string]json.RawMessage, len(states))
	for _, s := range states {
		if s.Alias != store.V1Alias {
			out[s.Alias] = s.Body
		}
	}
	if len(out) == 0 {
		return errStateNotFound.with("thing %s has not uploaded a state", thingID)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getStateAlias answers the state of one trait alias.
func (h *Handler) getStateAlias(w http.ResponseWriter, r *http.Request) error {
	_, thingID, err := h.targetAccess(r)
	if err != nil {
		return err
	}
	alias := r.PathValue("alias")
	states, err := h.store.States(r.Context(), thingID)
	if err != nil {
		return fmt.Errorf("load states: %w", err)
	}
	i := slices.IndexFunc(states, func(s store.State) bool { return s.Alias == alias })
	if alias == store.V1Alias || i < 0 {
		return errStateNotFound.with("thing %s has no state for alias %q", thingID, alias)
	}
	writeJSON(w, http.StatusOK, states[i].Body)
	return nil
}
