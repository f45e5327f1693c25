package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/trigger"
)

// DefaultMaxTriggersPerThing is how many triggers a thing may have when
// Config.MaxTriggersPerThing is zero. Every state upload evaluates all of
// the thing's STATES triggers: 3,000 of them made one thing's uploads 36
// times slower.
const DefaultMaxTriggersPerThing = 100

// triggerBound turns a configured MaxTriggersPerThing (0: the default,
// negative: none) into the bound store.CreateTrigger takes (0: none).
func triggerBound(configured int) int {
	switch {
	case configured < 0:
		return 0
	case configured == 0:
		return DefaultMaxTriggersPerThing
	default:
		return configured
	}
}

// What a trigger does.
const (
	triggersCommand    = "COMMAND"
	triggersServerCode = "SERVER_CODE"
)

// triggerRequest is the body of POST …/triggers and PATCH …/triggers/{TID}.
type triggerRequest struct {
	Predicate    json.RawMessage `json:"predicate"`
	TriggersWhat *string         `json:"triggersWhat"`
	Command      json.RawMessage `json:"command"`
	ServerCode   json.RawMessage `json:"serverCode"`
	Title        *string         `json:"title"`
	Description  *string         `json:"description"`
	Metadata     json.RawMessage `json:"metadata"`
}

// triggerJSON is a trigger as answered.
type triggerJSON struct {
	TriggerID      string          `json:"triggerID"`
	Predicate      json.RawMessage `json:"predicate"`
	TriggersWhat   string          `json:"triggersWhat"`
	Command        json.RawMessage `json:"command,omitempty"`
	ServerCode     json.RawMessage `json:"serverCode,omitempty"`
	Title          string          `json:"title,omitempty"`
	Description    string          `json:"description,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	Disabled       bool            `json:"disabled"`
	DisabledReason string          `json:"disabledReason,omitempty"`
}

func toTriggerJSON(tr store.Trigger) triggerJSON {
	what := triggersCommand
	if tr.ServerCode != nil {
		what = triggersServerCode
	}
	return triggerJSON{TriggerID: tr.ID, Predicate: tr.Predicate, TriggersWhat: what, Command: tr.Command,
		ServerCode: tr.ServerCode, Title: tr.Title, Description: tr.Description, Metadata: tr.Metadata,
		Disabled: tr.Disabled, DisabledReason: tr.DisabledReason}
}

// triggerAccess resolves the principal and the target thing of a trigger
// request: the thing itself, its owner or the app admin.
func (h *Handler) triggerAccess(r *http.Request) (principal, string, error) {
	return h.targetAccess(r)
}

// postTrigger creates a trigger of the target thing. 201 {"triggerID"}.
func (h *Handler) postTrigger(w http.ResponseWriter, r *http.Request) error {
	p, thingID, err := h.triggerAccess(r)
	if err != nil {
		return err
	}
	if mt := mediaType(r); !isJSONMedia(mt) {
		return errUnsupportedMediaType.with("a trigger is sent as JSON")
	}
	var req triggerRequest
	b, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	if err := checkNumberRange(b); err != nil {
		return err
	}
	if err := decodeStrict(b, &req, errWrongTrigger); err != nil {
		return err
	}
	if isNull(req.Predicate) {
		return errWrongTrigger.with("predicate is required")
	}
	now := h.cfg.Now()
	tr := store.Trigger{ID: secret.NewID(16), AppID: p.appID, ThingID: thingID, CreatedAt: now, ModifiedAt: now}
	if err := h.applyTrigger(r, p, &tr, req); err != nil {
		return err
	}
	max := triggerBound(h.cfg.MaxTriggersPerThing)
	switch err := h.store.CreateTrigger(r.Context(), tr, max); {
	case errors.Is(err, store.ErrTooManyTriggers):
		return errTooManyTriggers.with("the thing already has %d triggers, the limit; delete one first", max)
	case err != nil:
		return fmt.Errorf("store trigger: %w", err)
	}
	h.triggersChanged()
	writeJSON(w, http.StatusCreated, struct {
		TriggerID string `json:"triggerID"`
	}{tr.ID})
	return nil
}

// checkNumberRange refuses, with 400 INVALID_INPUT_DATA naming it, a number
// a float64 cannot hold (1e400) in a JSON body or value that is stored:
// triggers, commands, action results and thing properties, as state
// uploads are. Invalid JSON passes; its own parsing answers it.
func checkNumberRange(body []byte) error {
	if err := store.CheckNumbers(body); errors.Is(err, store.ErrNumberRange) {
		return errInvalidInput.with("%v", err)
	}
	return nil
}

// applyTrigger checks the fields given in req and sets them on tr. A new
// predicate resets what the trigger last saw.
func (h *Handler) applyTrigger(r *http.Request, p principal, tr *store.Trigger, req triggerRequest) error {
	if !isNull(req.Predicate) {
		pred, err := trigger.ParsePredicate(req.Predicate)
		if err != nil {
			return errWrongTrigger.with("%s", strings.TrimPrefix(err.Error(), trigger.ErrInvalid.Error()+": "))
		}
		tr.EventSource = pred.EventSource
		tr.Predicate = compact(req.Predicate)
		tr.Run = store.TriggerRun{}
	}
	what := ""
	switch {
	case req.TriggersWhat != nil:
		what = *req.TriggersWhat
	case !isNull(req.Command) && !isNull(req.ServerCode):
		return errWrongTrigger.with("a trigger has a command or a serverCode, not both")
	case !isNull(req.Command):
		what = triggersCommand
	case !isNull(req.ServerCode):
		what = triggersServerCode
	}
	switch what {
	case "":
		if tr.Command == nil && tr.ServerCode == nil {
			return errWrongTrigger.with("command or serverCode is required")
		}
	case triggersCommand:
		if !isNull(req.ServerCode) {
			return errWrongTrigger.with("triggersWhat COMMAND takes a command, not a serverCode")
		}
		if isNull(req.Command) {
			return errWrongTrigger.with("command is required")
		}
		cmd, err := h.checkTriggerCommand(r, p, tr.ThingID, req.Command)
		if err != nil {
			return err
		}
		tr.Command, tr.ServerCode = cmd, nil
	case triggersServerCode:
		if !isNull(req.Command) {
			return errWrongTrigger.with("triggersWhat SERVER_CODE takes a serverCode, not a command")
		}
		if isNull(req.ServerCode) {
			return errWrongTrigger.with("serverCode is required")
		}
		if h.cfg.Triggers == nil || !h.cfg.Triggers.ServerCodeEnabled() {
			return errWrongTrigger.with("server code needs a webhook, and none is configured (thingif serve --webhook-url)")
		}
		var sc trigger.ServerCode
		if err := decodeStrict(req.ServerCode, &sc, errWrongTrigger); err != nil {
			return err
		}
		if sc.Endpoint == "" {
			return errWrongTrigger.with("serverCode.endpoint is required")
		}
		if !isNull(sc.Parameters) && !isObject(sc.Parameters) {
			return errWrongTrigger.with("serverCode.parameters must be an object")
		}
		tr.ServerCode, tr.Command = compact(req.ServerCode), nil
	default:
		return errWrongTrigger.with("triggersWhat must be COMMAND or SERVER_CODE")
	}
	if req.Title != nil {
		if n := len([]rune(*req.Title)); n > maxTitleChars {
			return errWrongTrigger.with("title has %d characters, at most %d are allowed", n, maxTitleChars)
		}
		tr.Title = *req.Title
	}
	if req.Description != nil {
		tr.Description = *req.Description
	}
	if req.Metadata != nil {
		switch {
		case isNull(req.Metadata):
			tr.Metadata = nil
		case isObject(req.Metadata):
			tr.Metadata = compact(req.Metadata)
		default:
			return errWrongTrigger.with("metadata must be an object")
		}
	}
	return nil
}

// checkTriggerCommand checks a trigger's command as POST …/commands would,
// plus its optional target, which p must be allowed to command.
func (h *Handler) checkTriggerCommand(r *http.Request, p principal, thingID string, raw json.RawMessage) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if !isObject(raw) || json.Unmarshal(raw, &fields) != nil {
		return nil, errWrongTrigger.with("command must be an object")
	}
	if t, ok := fields["target"]; ok {
		var target string
		if json.Unmarshal(t, &target) != nil {
			return nil, errWrongTrigger.with(`command.target must be "thing:{thingID}"`)
		}
		kind, id, ok := strings.Cut(target, ":")
		if !ok || id == "" || !strings.EqualFold(kind, "thing") {
			return nil, errWrongTrigger.with(`command.target must be "thing:{thingID}"`)
		}
		if id != thingID {
			if err := h.authorizeThing(r.Context(), p, id, errTargetNotFound); err != nil {
				return nil, err
			}
		}
		delete(fields, "target")
		rest, _ := json.Marshal(fields)
		if _, err := parseCommand(rest); err != nil {
			return nil, triggerCommandError(err)
		}
		fields["target"], _ = json.Marshal("thing:" + id)
	} else if _, err := parseCommand(raw); err != nil {
		return nil, triggerCommandError(err)
	}
	if _, ok := fields["issuer"]; !ok && p.kind == store.TokenUser {
		fields["issuer"], _ = json.Marshal("user:" + p.subject)
	}
	b, _ := json.Marshal(fields)
	return b, nil
}

// triggerCommandError turns a command error into WRONG_TRIGGER.
func triggerCommandError(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return errWrongTrigger.with("command: %s", ae.message)
	}
	return err
}

// loadTrigger loads the {tid} trigger of the target thing after access
// checks.
func (h *Handler) loadTrigger(r *http.Request) (principal, store.Trigger, error) {
	p, thingID, err := h.triggerAccess(r)
	if err != nil {
		return principal{}, store.Trigger{}, err
	}
	id := r.PathValue("tid")
	tr, err := h.store.Trigger(r.Context(), thingID, id)
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, store.Trigger{}, errTriggerNotFound.with("trigger %s does not exist", id)
	}
	if err != nil {
		return principal{}, store.Trigger{}, fmt.Errorf("load trigger: %w", err)
	}
	return p, tr, nil
}

// getTrigger answers one trigger.
func (h *Handler) getTrigger(w http.ResponseWriter, r *http.Request) error {
	_, tr, err := h.loadTrigger(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toTriggerJSON(tr))
	return nil
}

// listTriggers answers a page of the target thing's triggers, oldest first.
func (h *Handler) listTriggers(w http.ResponseWriter, r *http.Request) error {
	_, thingID, err := h.triggerAccess(r)
	if err != nil {
		return err
	}
	limit, key, err := pageParams(r)
	if err != nil {
		return err
	}
	trs, next, err := h.store.Triggers(r.Context(), thingID, key, limit)
	if err != nil {
		return listError("triggers", err)
	}
	out := struct {
		Triggers          []triggerJSON `json:"triggers"`
		NextPaginationKey string        `json:"nextPaginationKey,omitempty"`
	}{Triggers: make([]triggerJSON, 0, len(trs)), NextPaginationKey: next}
	for _, tr := range trs {
		out.Triggers = append(out.Triggers, toTriggerJSON(tr))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// patchTrigger replaces the fields given. 204.
func (h *Handler) patchTrigger(w http.ResponseWriter, r *http.Request) error {
	p, tr, err := h.loadTrigger(r)
	if err != nil {
		return err
	}
	if mt := mediaType(r); !isJSONMedia(mt) {
		return errUnsupportedMediaType.with("a trigger is sent as JSON")
	}
	b, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	if err := checkNumberRange(b); err != nil {
		return err
	}
	var req triggerRequest
	if err := decodeStrict(b, &req, errWrongTrigger); err != nil {
		return err
	}
	if err := h.applyTrigger(r, p, &tr, req); err != nil {
		return err
	}
	tr.ModifiedAt = h.cfg.Now()
	if err := h.store.UpdateTrigger(r.Context(), tr); err != nil {
		return fmt.Errorf("update trigger: %w", err)
	}
	h.triggersChanged()
	writeNoContent(w)
	return nil
}

// enableTrigger serves PUT …/enable and …/disable. 204.
func (h *Handler) enableTrigger(enable bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		_, tr, err := h.loadTrigger(r)
		if err != nil {
			return err
		}
		tr.Disabled, tr.DisabledReason = !enable, ""
		if enable && tr.EventSource == store.EventScheduleOnce {
			tr.Run = store.TriggerRun{} // enabling a fired SCHEDULE_ONCE arms it again
		}
		tr.ModifiedAt = h.cfg.Now()
		if err := h.store.UpdateTrigger(r.Context(), tr); err != nil {
			return fmt.Errorf("update trigger: %w", err)
		}
		h.triggersChanged()
		writeNoContent(w)
		return nil
	}
}

// deleteTrigger deletes a trigger and its results. 204.
func (h *Handler) deleteTrigger(w http.ResponseWriter, r *http.Request) error {
	_, tr, err := h.loadTrigger(r)
	if err != nil {
		return err
	}
	err = h.store.DeleteTrigger(r.Context(), tr.ThingID, tr.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errTriggerNotFound.with("trigger %s does not exist", tr.ID)
	}
	if err != nil {
		return fmt.Errorf("delete trigger: %w", err)
	}
	h.triggersChanged()
	writeNoContent(w)
	return nil
}

// resultJSON is one server-code result as answered.
type resultJSON struct {
	Succeeded     bool            `json:"succeeded"`
	ReturnedValue json.RawMessage `json:"returnedValue,omitempty"`
	ExecutedAt    int64           `json:"executedAt"`
	Endpoint      string          `json:"endpoint"`
	Error         *struct {
		ErrorMessage string `json:"errorMessage"`
	} `json:"error,omitempty"`
}

// listTriggerResults answers a page of a trigger's server-code results,
// newest first.
func (h *Handler) listTriggerResults(w http.ResponseWriter, r *http.Request) error {
	_, tr, err := h.loadTrigger(r)
	if err != nil {
		return err
	}
	limit, key, err := pageParams(r)
	if err != nil {
		return err
	}
	res, next, err := h.store.TriggerResults(r.Context(), tr.ThingID, tr.ID, key, limit)
	if err != nil {
		return listError("trigger results", err)
	}
	out := struct {
		Results           []resultJSON `json:"triggerServerCodeResults"`
		NextPaginationKey string       `json:"nextPaginationKey,omitempty"`
	}{Results: make([]resultJSON, 0, len(res)), NextPaginationKey: next}
	for _, x := range res {
		rj := resultJSON{Succeeded: x.Succeeded, ReturnedValue: x.ReturnedValue, ExecutedAt: x.ExecutedAt.UnixMilli(), Endpoint: x.Endpoint}
		if x.Error != "" {
			rj.Error = &struct {
				ErrorMessage string `json:"errorMessage"`
			}{x.Error}
		}
		out.Results = append(out.Results, rj)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// triggersChanged wakes the trigger scheduler.
func (h *Handler) triggersChanged() {
	if h.cfg.Triggers != nil {
		h.cfg.Triggers.Changed()
	}
}

// stateChanged runs the thing's STATES triggers after a state write.
func (h *Handler) stateChanged(r *http.Request, thingID string) {
	if h.cfg.Triggers != nil {
		h.cfg.Triggers.StateChanged(r.Context(), r.PathValue("app"), thingID)
	}
}
