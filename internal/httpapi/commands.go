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
	"unicode/utf8"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

// Command limits.
const (
	maxTitleChars       = 50
	defaultCommandLimit = 10
	maxCommandLimit     = 100
)

const mediaCommandResults = "application/vnd.kii.commandresultsupdaterequest+json"

// commandRequest is the body of POST …/commands: v1 when schema is given,
// v2 (trait form) otherwise. Unknown fields are refused.
type commandRequest struct {
	Schema        *string         `json:"schema"`
	SchemaVersion *int            `json:"schemaVersion"`
	Actions       json.RawMessage `json:"actions"`
	Issuer        *string         `json:"issuer"`
	Title         *string         `json:"title"`
	Description   *string         `json:"description"`
	Metadata      json.RawMessage `json:"metadata"`
}

// commandJSON is a command as answered by GET.
type commandJSON struct {
	CommandID     string          `json:"commandID"`
	Schema        string          `json:"schema,omitempty"`
	SchemaVersion *int            `json:"schemaVersion,omitempty"`
	Target        string          `json:"target"`
	CommandState  string          `json:"commandState"`
	Issuer        string          `json:"issuer"`
	Actions       json.RawMessage `json:"actions"`
	ActionResults json.RawMessage `json:"actionResults,omitempty"`
	Title         string          `json:"title,omitempty"`
	Description   string          `json:"description,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	Created       int64           `json:"created"`
	Modified      int64           `json:"modified"`
}

func toCommandJSON(c store.Command) commandJSON {
	out := commandJSON{
		CommandID:     c.ID,
		Schema:        c.Schema,
		Target:        "thing:" + c.ThingID,
		CommandState:  string(c.State),
		Issuer:        c.Issuer,
		Actions:       c.Actions,
		ActionResults: c.ActionResults,
		Title:         c.Title,
		Description:   c.Description,
		Metadata:      c.Metadata,
		Created:       c.CreatedAt.UnixMilli(),
		Modified:      c.ModifiedAt.UnixMilli(),
	}
	if c.Schema != "" {
		v := c.SchemaVersion
		out.SchemaVersion = &v
	}
	if len(out.Actions) == 0 {
		out.Actions = json.RawMessage("[]")
	}
	return out
}

// postCommand stores a new command for a thing (app admin or owner), tells the
// Pusher, and answers 201 {"commandID":…}.
func (h *Handler) postCommand(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, thingID, err := h.targetAccess(r)
	if err != nil {
		return err
	}
	if p.kind != store.TokenApp && p.kind != store.TokenUser {
		return errWrongToken.with("commands are sent by the app admin or an owner")
	}
	if mt := mediaType(r); !isJSONMedia(mt) {
		return errUnsupportedMediaType.with("a command is sent as JSON")
	}
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	c, err := parseCommand(body)
	if err != nil {
		return err
	}
	if c.Issuer == "" && p.kind == store.TokenUser {
		c.Issuer = "user:" + p.subject
	}
	now := h.cfg.Now()
	c.ID = secret.NewID(16)
	c.AppID = p.appID
	c.ThingID = thingID
	c.State = store.CommandSending
	c.CreatedAt, c.ModifiedAt = now, now
	max := h.maxPending()
	switch err := h.store.CreateCommand(ctx, c, max); {
	case errors.Is(err, store.ErrTooManyPending):
		return errTooManyPendingCommands.with("the thing already has %d commands not yet delivered, the limit", max)
	case err != nil:
		return fmt.Errorf("store command: %w", err)
	}
	if h.cfg.Pusher != nil {
		h.cfg.Pusher.Push(ctx, c)
	}
	writeJSON(w, http.StatusCreated, struct {
		CommandID string `json:"commandID"`
	}{c.ID})
	return nil
}

// parseCommand checks a command body and returns the command it describes
// (without ID, app, thing, state or times). Every failure is WRONG_COMMAND
// with a message naming the problem, but for a body that is not JSON at all.
func parseCommand(body []byte) (store.Command, error) {
	if !isObject(body) {
		return store.Command{}, errWrongCommand.with("the body must be a JSON object")
	}
	if !utf8.Valid(body) || !json.Valid(body) {
		return store.Command{}, errInvalidInput.with("the body is not valid JSON")
	}
	if err := checkNumberRange(body); err != nil {
		return store.Command{}, err
	}
	var req commandRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return store.Command{}, errWrongCommand.with("unknown field %s", f)
		}
		return store.Command{}, jsonError(err, errWrongCommand)
	}
	if _, err := dec.Token(); err != io.EOF {
		return store.Command{}, errInvalidInput.with("the body must hold one JSON object")
	}

	var c store.Command
	v1 := req.Schema != nil
	if v1 {
		if *req.Schema == "" {
			return c, errWrongCommand.with("schema must not be empty")
		}
		if req.SchemaVersion == nil {
			return c, errWrongCommand.with("schemaVersion is required with schema")
		}
		c.Schema, c.SchemaVersion = *req.Schema, *req.SchemaVersion
	} else if req.SchemaVersion != nil {
		return c, errWrongCommand.with("schemaVersion is given without schema")
	}
	if err := checkActions(req.Actions, v1); err != nil {
		return c, err
	}
	c.Actions = compact(req.Actions)
	if req.Issuer != nil {
		iss := *req.Issuer
		kind, id, ok := strings.Cut(iss, ":")
		if !ok || id == "" || (!strings.EqualFold(kind, "user") && !strings.EqualFold(kind, "group")) {
			return c, errWrongCommand.with("issuer must be user:{userID} or group:{groupID}")
		}
		c.Issuer = iss
	}
	if req.Title != nil {
		if n := utf8.RuneCountInString(*req.Title); n > maxTitleChars {
			return c, errWrongCommand.with("title has %d characters, at most %d are allowed", n, maxTitleChars)
		}
		c.Title = *req.Title
	}
	if req.Description != nil {
		c.Description = *req.Description
	}
	if !isNull(req.Metadata) {
		if !isObject(req.Metadata) {
			return c, errWrongCommand.with("metadata must be an object")
		}
		c.Metadata = compact(req.Metadata)
	}
	return c, nil
}

// checkActions checks the actions of a command: a non-empty array of
// single-key objects whose values are objects (v1) or non-empty arrays of
// single-key objects (v2).
func checkActions(actions json.RawMessage, v1 bool) error {
	if isNull(actions) {
		return errWrongCommand.with("actions is required")
	}
	var list []json.RawMessage
	if !isArray(actions) || json.Unmarshal(actions, &list) != nil {
		return errWrongCommand.with("actions must be an array")
	}
	if len(list) == 0 {
		return errWrongCommand.with("actions must not be empty")
	}
	for i, a := range list {
		name, val, ok := singleKey(a)
		if !ok {
			return errWrongCommand.with("actions[%d] must be an object with exactly one key", i)
		}
		if v1 {
			if !isObject(val) {
				return errWrongCommand.with("actions[%d].%s must be an object", i, name)
			}
			continue
		}
		var inner []json.RawMessage
		if !isArray(val) || json.Unmarshal(val, &inner) != nil || len(inner) == 0 {
			return errWrongCommand.with("actions[%d].%s must be a non-empty array of actions", i, name)
		}
		for j, act := range inner {
			if _, _, ok := singleKey(act); !ok {
				return errWrongCommand.with("actions[%d].%s[%d] must be an object with exactly one key", i, name, j)
			}
		}
	}
	return nil
}

// singleKey returns the key and value of a JSON object with exactly one
// non-empty key.
func singleKey(raw json.RawMessage) (string, json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if !isObject(raw) || json.Unmarshal(raw, &m) != nil || len(m) != 1 {
		return "", nil, false
	}
	for k, v := range m {
		return k, v, k != ""
	}
	return "", nil, false
}

// getCommand answers one command of the target thing.
func (h *Handler) getCommand(w http.ResponseWriter, r *http.Request) error {
	_, thingID, err := h.targetAccess(r)
	if err != nil {
		return err
	}
	cid := r.PathValue("cid")
	c, err := h.store.Command(r.Context(), thingID, cid)
	if errors.Is(err, store.ErrNotFound) {
		return errCommandNotFound.with("command %s does not exist", cid)
	}
	if err != nil {
		return fmt.Errorf("load command: %w", err)
	}
	writeJSON(w, http.StatusOK, toCommandJSON(c))
	return nil
}

// listCommands answers a page of the target thing's commands, newest first.
// bestEffortLimit defaults to 10 and is capped at 100, to keep answers small
// for devices.
func (h *Handler) listCommands(w http.ResponseWriter, r *http.Request) error {
	_, thingID, err := h.targetAccess(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := defaultCommandLimit
	if s := q.Get("bestEffortLimit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return errInvalidInput.with("bestEffortLimit must be a positive integer")
		}
		limit = min(n, maxCommandLimit)
	}
	key := q.Get("paginationKey")
	cmds, next, err := h.store.Commands(r.Context(), thingID, key, limit)
	if err != nil {
		return listError("commands", err)
	}
	out := struct {
		Commands          []commandJSON `json:"commands"`
		NextPaginationKey string        `json:"nextPaginationKey,omitempty"`
	}{Commands: make([]commandJSON, 0, len(cmds)), NextPaginationKey: next}
	for _, c := range cmds {
		out.Commands = append(out.Commands, toCommandJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// putActionResults stores a thing's results for a command: DONE when every
// action succeeded, INCOMPLETE otherwise. Two store calls for a thing
// (token, results).
func (h *Handler) putActionResults(w http.ResponseWriter, r *http.Request) error {
	_, thingID, err := h.targetAccess(r)
	if err != nil {
		return err
	}
	if mt := mediaType(r); mt != "" && mt != contentTypeJSON && mt != mediaCommandResults {
		return errUnsupportedMediaType.with("action results take application/json or application/vnd.kii.CommandResultsUpdateRequest+json")
	}
	var req struct {
		ActionResults json.RawMessage `json:"actionResults"`
	}
	if err := h.readObject(w, r, &req); err != nil {
		return err
	}
	done, err := checkActionResults(req.ActionResults)
	if err != nil {
		return err
	}
	if err := checkNumberRange(req.ActionResults); err != nil {
		return err
	}
	state := store.CommandIncomplete
	if done {
		state = store.CommandDone
	}
	cid := r.PathValue("cid")
	_, err = h.store.SetActionResults(r.Context(), thingID, cid, compact(req.ActionResults), state, h.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		return errCommandNotFound.with("command %s does not exist", cid)
	}
	if err != nil {
		return fmt.Errorf("store action results: %w", err)
	}
	writeNoContent(w)
	return nil
}

// actionResult is one result: {"succeeded":bool,"errorMessage"?,"data"?}.
type actionResult struct {
	Succeeded *bool `json:"succeeded"`
}

// checkActionResults checks v1 results [{"action":{"succeeded":…}}] and v2
// results [{"Alias":[{"action":{"succeeded":…}}]}], and reports whether
// every action succeeded.
func checkActionResults(raw json.RawMessage) (bool, error) {
	var list []json.RawMessage
	if isNull(raw) || !isArray(raw) || json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return false, errInvalidInput.with("actionResults must be a non-empty array")
	}
	all := true
	check := func(where string, v json.RawMessage) error {
		var res actionResult
		if !isObject(v) || json.Unmarshal(v, &res) != nil || res.Succeeded == nil {
			return errInvalidInput.with("%s must be an object with a boolean succeeded", where)
		}
		all = all && *res.Succeeded
		return nil
	}
	for i, item := range list {
		name, val, ok := singleKey(item)
		if !ok {
			return false, errInvalidInput.with("actionResults[%d] must be an object with exactly one key", i)
		}
		if !isArray(val) { // v1
			if err := check(fmt.Sprintf("actionResults[%d].%s", i, name), val); err != nil {
				return false, err
			}
			continue
		}
		var inner []json.RawMessage
		if json.Unmarshal(val, &inner) != nil || len(inner) == 0 {
			return false, errInvalidInput.with("actionResults[%d].%s must be a non-empty array", i, name)
		}
		for j, act := range inner {
			action, res, ok := singleKey(act)
			if !ok {
				return false, errInvalidInput.with("actionResults[%d].%s[%d] must be an object with exactly one key", i, name, j)
			}
			if err := check(fmt.Sprintf("actionResults[%d].%s[%d].%s", i, name, j, action), res); err != nil {
				return false, err
			}
		}
	}
	return all, nil
}
