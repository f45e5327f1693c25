package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

// DefaultUserTokenTTL is the lifetime of user tokens.
const DefaultUserTokenTTL = 24 * time.Hour

// User limits.
const (
	maxUsernameLen  = 64
	minPasswordLen  = 4
	maxPasswordLen  = 128
	maxGroupMembers = 1000
)

// userJSON is a user as answered.
type userJSON struct {
	UserID    string `json:"userID"`
	LoginName string `json:"loginName"`
	Created   int64  `json:"created"`
}

// postUser creates a user of the app (app admin only): {"loginName",
// "password"} ("username" is accepted for loginName). 201 {"userID",…}.
func (h *Handler) postUser(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	if p.kind != store.TokenApp {
		return errWrongToken.with("users are created with an app token")
	}
	if mt := mediaType(r); !isJSONMedia(mt) {
		return errUnsupportedMediaType.with("a user is created with JSON")
	}
	var req struct {
		LoginName *string `json:"loginName"`
		Username  *string `json:"username"`
		Password  *string `json:"password"`
	}
	if err := h.readStrict(w, r, &req); err != nil {
		return err
	}
	name := req.LoginName
	if name == nil {
		name = req.Username
	}
	if name == nil || *name == "" || len(*name) > maxUsernameLen || strings.ContainsAny(*name, " \t\r\n") {
		return errInvalidInput.with("loginName is required: 1 to %d characters, no spaces", maxUsernameLen)
	}
	if req.Password == nil || len(*req.Password) < minPasswordLen || len(*req.Password) > maxPasswordLen {
		return errInvalidInput.with("password is required: %d to %d characters", minPasswordLen, maxPasswordLen)
	}
	hash, err := secret.HashPassword(*req.Password, h.cfg.PasswordCost)
	if err != nil {
		return fmt.Errorf("hash user password: %w", err)
	}
	u := store.User{ID: "u." + secret.NewID(12), AppID: p.appID, Username: *name, PasswordHash: hash, CreatedAt: h.cfg.Now()}
	err = h.store.CreateUser(ctx, u)
	if errors.Is(err, store.ErrConflict) {
		return errUserAlreadyExists.with("a user named %q exists", *name)
	}
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	writeJSON(w, http.StatusCreated, userJSON{UserID: u.ID, LoginName: u.Username, Created: u.CreatedAt.UnixMilli()})
	return nil
}

// getUser answers a user, to the app admin or the user itself.
func (h *Handler) getUser(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	id := r.PathValue("user")
	if p.kind != store.TokenApp && (p.kind != store.TokenUser || p.subject != id) {
		return errWrongToken.with("a user may read only itself")
	}
	u, err := h.store.User(r.Context(), p.appID, id)
	if errors.Is(err, store.ErrNotFound) {
		return errUserNotFound.with("user %s does not exist", id)
	}
	if err != nil {
		return fmt.Errorf("load user: %w", err)
	}
	writeJSON(w, http.StatusOK, userJSON{UserID: u.ID, LoginName: u.Username, Created: u.CreatedAt.UnixMilli()})
	return nil
}

// listUsers answers a page of the app's users (app admin only), in
// creation order: {"users":[…],"nextPaginationKey"}, paginated as the
// things list is.
func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	if p.kind != store.TokenApp {
		return errWrongToken.with("the users of an app are listed with an app token")
	}
	limit, key, err := pageParams(r)
	if err != nil {
		return err
	}
	users, next, err := h.store.Users(r.Context(), p.appID, key, limit)
	if err != nil {
		return listError("users", err)
	}
	out := struct {
		Users             []userJSON `json:"users"`
		NextPaginationKey string     `json:"nextPaginationKey,omitempty"`
	}{Users: make([]userJSON, 0, len(users)), NextPaginationKey: next}
	for _, u := range users {
		out.Users = append(out.Users, userJSON{UserID: u.ID, LoginName: u.Username, Created: u.CreatedAt.UnixMilli()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteUser deletes a user of the app (app admin only) with its tokens
// and group memberships; its things are left without an owner. 204.
func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	if p.kind != store.TokenApp {
		return errWrongToken.with("users are deleted with an app token")
	}
	id := r.PathValue("user")
	err = h.store.DeleteUser(r.Context(), p.appID, id)
	if errors.Is(err, store.ErrNotFound) {
		return errUserNotFound.with("user %s does not exist", id)
	}
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// userToken issues a user token for a username and password.
func (h *Handler) userToken(w http.ResponseWriter, r *http.Request, app store.App, req tokenRequest) error {
	ctx := r.Context()
	addrKey := addrLimitKey("user-password", r)
	if err := h.limitAllow(w, addrKey); err != nil {
		return err
	}
	u, err := h.store.UserByUsername(ctx, app.ID, req.Username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("load user: %w", err)
	}
	// Unknown user and wrong password answer alike.
	if err != nil || !h.verify.Verify(u.PasswordHash, req.Password) {
		h.limitFail(addrKey)
		return errInvalidGrant
	}
	now := h.cfg.Now()
	tok := secret.NewToken()
	if err := h.store.PutToken(ctx, store.Token{Hash: secret.HashToken(tok), AppID: app.ID, Kind: store.TokenUser,
		Subject: u.ID, ExpiresAt: now.Add(h.cfg.UserTokenTTL), CreatedAt: now}); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	writeJSON(w, http.StatusOK, tokenResponse{ID: u.ID, AccessToken: tok, ExpiresIn: int64(h.cfg.UserTokenTTL.Seconds()), TokenType: "Bearer"})
	return nil
}

// postRevoke revokes a token of the app: {"token":"…"}. As in RFC 7009,
// knowing a token is enough to revoke it, and the answer is 200 {} whether
// or not it existed; a token of another app is left alone.
func (h *Handler) postRevoke(w http.ResponseWriter, r *http.Request) error {
	if mt := mediaType(r); !isJSONMedia(mt) {
		return errUnsupportedMediaType.with("use application/json")
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := h.readStrict(w, r, &req); err != nil {
		return err
	}
	if req.Token == "" {
		return errInvalidInput.with("token is required")
	}
	hash := secret.HashToken(req.Token)
	t, err := h.store.Token(r.Context(), hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("load token: %w", err)
	case t.AppID == r.PathValue("app"):
		if err := h.store.DeleteToken(r.Context(), hash); err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// groupJSON is a group as answered.
type groupJSON struct {
	GroupID string   `json:"groupID"`
	Name    string   `json:"name"`
	Owner   string   `json:"owner"`
	Members []string `json:"members"`
	Created int64    `json:"created"`
}

// postGroup creates a group: {"name","owner"?,"members"?}. A user creates
// groups it owns and is a member of; the app admin names the owner.
func (h *Handler) postGroup(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	if p.kind != store.TokenApp && p.kind != store.TokenUser {
		return errWrongToken.with("groups are created by users or the app admin")
	}
	if mt := mediaType(r); !isJSONMedia(mt) {
		return errUnsupportedMediaType.with("a group is created with JSON")
	}
	var req struct {
		Name    string   `json:"name"`
		Owner   string   `json:"owner"`
		Members []string `json:"members"`
	}
	if err := h.readStrict(w, r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return errInvalidInput.with("name is required")
	}
	if err := checkLen("name", req.Name, maxIDLen); err != nil {
		return err
	}
	if err := checkLen("owner", req.Owner, maxIDLen); err != nil {
		return err
	}
	if p.kind == store.TokenUser {
		if req.Owner != "" && req.Owner != p.subject {
			return errWrongToken.with("a user creates groups it owns")
		}
		req.Owner = p.subject
	}
	if req.Owner == "" {
		return errInvalidInput.with("owner (a user ID) is required")
	}
	if len(req.Members) > maxGroupMembers {
		return errInvalidInput.with("at most %d members", maxGroupMembers)
	}
	for _, m := range req.Members {
		if err := checkLen("members[]", m, maxIDLen); err != nil {
			return err
		}
	}
	members := append([]string{req.Owner}, req.Members...)
	slices.Sort(members)
	members = slices.Compact(members)
	g := store.Group{ID: "g." + secret.NewID(12), AppID: p.appID, Name: req.Name, Owner: req.Owner, Members: members, CreatedAt: h.cfg.Now()}
	err = h.store.CreateGroup(r.Context(), g)
	if errors.Is(err, store.ErrNotFound) {
		return errUserNotFound.with("a member is not a user of the app")
	}
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	writeJSON(w, http.StatusCreated, toGroupJSON(g))
	return nil
}

func toGroupJSON(g store.Group) groupJSON {
	return groupJSON{GroupID: g.ID, Name: g.Name, Owner: g.Owner, Members: g.Members, Created: g.CreatedAt.UnixMilli()}
}

// getGroup answers a group to the app admin and its members.
func (h *Handler) getGroup(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	if p.kind != store.TokenApp && p.kind != store.TokenUser {
		return errWrongToken.with("groups are read by their members or the app admin")
	}
	id := r.PathValue("group")
	g, err := h.store.Group(r.Context(), p.appID, id)
	if errors.Is(err, store.ErrNotFound) {
		return errGroupNotFound.with("group %s does not exist", id)
	}
	if err != nil {
		return fmt.Errorf("load group: %w", err)
	}
	if p.kind == store.TokenUser && !slices.Contains(g.Members, p.subject) {
		return errWrongToken.with("only members may read a group")
	}
	writeJSON(w, http.StatusOK, toGroupJSON(g))
	return nil
}

// isOwner reports whether the user principal p owns owner ("USER:{id}" or
// "GROUP:{id}" with p a member).
func (h *Handler) isOwner(ctx context.Context, p principal, owner string) (bool, error) {
	kind, id, _ := strings.Cut(owner, ":")
	switch {
	case strings.EqualFold(kind+":", store.OwnerUser):
		return id == p.subject, nil
	case strings.EqualFold(kind+":", store.OwnerGroup):
		groups, err := h.store.GroupsOfUser(ctx, p.appID, p.subject)
		if err != nil {
			return false, fmt.Errorf("load groups: %w", err)
		}
		return slices.Contains(groups, id), nil
	}
	return false, nil
}

// checkOwner checks that the user principal p owns thing thingID of its
// app. A thing that does not exist or is not p's is WRONG_TOKEN alike:
// users are not told which things exist.
func (h *Handler) checkOwner(ctx context.Context, p principal, thingID string) error {
	owner, err := h.store.ThingOwner(ctx, thingID)
	if errors.Is(err, store.ErrNotFound) {
		return errWrongToken.with("the user does not own thing %s", thingID)
	}
	if err != nil {
		return fmt.Errorf("load owner: %w", err)
	}
	if _, err := h.store.Thing(ctx, p.appID, thingID); errors.Is(err, store.ErrNotFound) {
		return errWrongToken.with("the user does not own thing %s", thingID)
	} else if err != nil {
		return fmt.Errorf("load thing: %w", err)
	}
	ok, err := h.isOwner(ctx, p, owner)
	if err != nil {
		return err
	}
	if !ok {
		return errWrongToken.with("the user does not own thing %s", thingID)
	}
	return nil
}
