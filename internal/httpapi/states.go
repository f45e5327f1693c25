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

// bulkRequest is the body of POST …/states-bulk. Its shape is inferred (not
// published): {"states":[{"timestamp":ms,"state":{alias:{…}}}]}, timestamp
// optional (the time of the request when absent).
type bulkRequest struct {
	States []struct {
		Timestamp *int64                     `json:"timestamp"`
		State     map[string]json.RawMessage `json:"state"`
	} `json:"states"`
}

// postStatesBulk writes several v2 states in timestamp order, each replacing
// the state as a PUT would, so that the latest one is what remains. All
// items are checked before any is written.
func (h *Handler) postStatesBulk(w http.ResponseWriter, r *http.Request) error {
	_, thingID, err := h.targetAccess(r)
	if err != nil {
		return err
	}
	if mt := mediaType(r); mt != mediaStateBulkUpload && mt != contentTypeJSON && mt != "" {
		return errUnsupportedMediaType.with("states-bulk takes application/vnd.kii.StateBulkUploadRequest+json")
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
		at := now
		if item.Timestamp != nil {
			if *item.Timestamp < 0 {
				return errInvalidInput.with("states[%d].timestamp must not be negative", i)
			}
			at = time.UnixMilli(*item.Timestamp)
		}
		aliases, err := checkAliases(item.State, fmt.Sprintf("states[%d].state: ", i))
		if err != nil {
			return err
		}
		writes = append(writes, store.StateWrite{ThingID: thingID, Aliases: aliases, Mode: store.StateReplace, At: at})
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
