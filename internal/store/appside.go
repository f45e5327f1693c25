package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// User is a person using an app: a possible owner of things. Users log in
// with their username and password at the token endpoint.
type User struct {
	ID       string // "u.…", assigned by the server
	AppID    string
	Username string // unique within the app
	// PasswordHash is the user password hashed with secret.HashPassword.
	PasswordHash string
	CreatedAt    time.Time
}

// Group is a set of users of an app that may own things together.
type Group struct {
	ID        string // "g.…", assigned by the server
	AppID     string
	Name      string
	Owner     string   // user ID of the group's creator
	Members   []string // user IDs, the owner included; sorted
	CreatedAt time.Time
}

// Owner prefixes: a thing's owner is "USER:{userID}" or "GROUP:{groupID}".
const (
	OwnerUser  = "USER:"
	OwnerGroup = "GROUP:"
)

// ValidOwner reports whether s is "USER:{id}" or "GROUP:{id}" with a non-empty
// id (the kind matched case-insensitively, as clients write both).
func ValidOwner(s string) bool {
	kind, id, ok := strings.Cut(s, ":")
	return ok && id != "" && (strings.EqualFold(kind+":", OwnerUser) || strings.EqualFold(kind+":", OwnerGroup))
}

// EndNode is the gateway link of an end node: the thing behind a gateway,
// and whether the gateway last reported it connected.
type EndNode struct {
	ThingID    string
	GatewayID  string
	Online     bool
	ModifiedAt time.Time
}

// CommandExpired is the state of a command that was never delivered within
// the configured command expiry (see docs/protocol-decisions.md).
const CommandExpired CommandState = "EXPIRED"

// Trigger event sources.
const (
	EventStates       = "STATES"
	EventSchedule     = "SCHEDULE"
	EventScheduleOnce = "SCHEDULE_ONCE"
)

// Trigger is a rule of a thing: when its predicate fires, it sends a command
// to its target thing or posts to the configured webhook ("server code").
type Trigger struct {
	ID      string
	AppID   string
	ThingID string // the thing whose states it watches and whose triggers list holds it
	// EventSource is the predicate's eventSource: EventStates, EventSchedule
	// or EventScheduleOnce. Stored apart so that the scheduler can find its
	// triggers without decoding every predicate.
	EventSource string
	Predicate   json.RawMessage // the predicate JSON, as validated
	// Command is the command template JSON (trait or schema form), or nil.
	Command json.RawMessage
	// ServerCode is the server-code JSON ({"endpoint":…,"parameters":…}),
	// or nil. Exactly one of Command and ServerCode is set.
	ServerCode     json.RawMessage
	Title          string
	Description    string
	Metadata       json.RawMessage // JSON object, or nil
	Disabled       bool
	DisabledReason string
	// Run is what the trigger engine last recorded.
	Run        TriggerRun
	CreatedAt  time.Time
	ModifiedAt time.Time
}

// TriggerRun is the evaluation state of a trigger, kept so that transitions
// (false→true) and schedules survive a restart.
type TriggerRun struct {
	// Evaluated tells whether the predicate has been evaluated since the
	// trigger was created or its predicate changed; Satisfied is the result.
	Evaluated bool
	Satisfied bool
	// FiredAt is when the trigger last fired; zero if never.
	FiredAt time.Time
}

// TriggerResult is the outcome of one server-code (webhook) execution.
type TriggerResult struct {
	TriggerID     string
	ThingID       string
	Succeeded     bool
	ReturnedValue json.RawMessage // the webhook's JSON answer, or nil
	Error         string          // why it failed; empty on success
	Endpoint      string
	ExecutedAt    time.Time
}

// AppSide is the part of Store that serves apps and owners rather than
// things: users and groups, ownership, gateways, the list of things, command
// expiry, state history, and triggers with their results.
type AppSide interface {
	// CreateUser stores a new user. ErrConflict if the username is taken in
	// the app, ErrNotFound if the app does not exist.
	CreateUser(ctx context.Context, u User) error
	// User returns a user of the app by ID, or ErrNotFound.
	User(ctx context.Context, appID, id string) (User, error)
	// UserByUsername returns a user of the app by username, or ErrNotFound.
	UserByUsername(ctx context.Context, appID, username string) (User, error)
	// Users lists the users of an app in creation order, at most limit (0:
	// all) after paginationKey (empty: from the first). The returned key
	// continues the listing; it is empty after the last page.
	Users(ctx context.Context, appID, paginationKey string, limit int) ([]User, string, error)
	// DeleteUser deletes a user of the app with its tokens and group
	// memberships; the things it owned are left without an owner.
	// ErrNotFound if there is no such user.
	DeleteUser(ctx context.Context, appID, id string) error
	// CreateGroup stores a new group with its members. ErrNotFound if the
	// app or a member does not exist.
	CreateGroup(ctx context.Context, g Group) error
	// Group returns a group of the app with its members, or ErrNotFound.
	Group(ctx context.Context, appID, id string) (Group, error)
	// GroupsOfUser returns the IDs of the groups the user is a member of,
	// sorted.
	GroupsOfUser(ctx context.Context, appID, userID string) ([]string, error)

	// AddOwner makes owner ("USER:{id}" or "GROUP:{id}") the owner of a
	// thing. Adding the owner the thing already has is not an error; a thing
	// owned by someone else gives ErrConflict, a missing thing ErrNotFound.
	AddOwner(ctx context.Context, appID, thingID, owner string, at time.Time) error
	// ThingOwner returns the owner of a thing, or ErrNotFound when it has
	// none.
	ThingOwner(ctx context.Context, thingID string) (string, error)
	// Things lists the things of an app in creation order, at most limit
	// (all when limit <= 0), after the position named by paginationKey.
	// A non-empty search keeps only the things whose ID or vendor thing ID
	// contains it, ASCII letters matching either case. next is "" on the
	// last page.
	Things(ctx context.Context, appID, search, paginationKey string, limit int) (things []Thing, next string, err error)
	// PutEndNode stores (or replaces) the gateway link of an end node.
	// ErrNotFound if either thing does not exist.
	PutEndNode(ctx context.Context, e EndNode) error
	// EndNode returns the gateway link of an end node, or ErrNotFound.
	EndNode(ctx context.Context, thingID string) (EndNode, error)

	// ExpireCommands moves every command still SENDING that was created
	// before createdBefore to CommandExpired (modified at) and returns how
	// many it moved.
	ExpireCommands(ctx context.Context, createdBefore, at time.Time) (int64, error)

	// StateHistory returns the states an alias of a thing had, one per
	// upload, with from <= ModifiedAt <= to (a zero to means no upper
	// bound), oldest first, at most limit (all when limit <= 0).
	StateHistory(ctx context.Context, thingID, alias string, from, to time.Time, limit int) ([]State, error)
	// PruneStateHistory deletes the history older than before and returns
	// how many entries it deleted. The latest states are kept.
	PruneStateHistory(ctx context.Context, before time.Time) (int64, error)

	// CreateTrigger stores a new trigger. ErrNotFound if its thing does not
	// exist, ErrConflict if its ID is taken. When maxPerThing > 0 and the
	// thing already has maxPerThing or more triggers, it stores nothing and
	// returns ErrTooManyTriggers: the count and the insert are one
	// transaction, so the bound is exact under concurrent creates.
	CreateTrigger(ctx context.Context, tr Trigger, maxPerThing int) error
	// Trigger returns a trigger of the thing, or ErrNotFound.
	Trigger(ctx context.Context, thingID, id string) (Trigger, error)
	// Triggers lists the triggers of a thing, oldest first, at most limit
	// (all when limit <= 0), after the position named by paginationKey.
	Triggers(ctx context.Context, thingID, paginationKey string, limit int) (triggers []Trigger, next string, err error)
	// EnabledTriggers returns the enabled triggers with the given event
	// source, of one thing, or of every thing when thingID is "", oldest
	// first.
	EnabledTriggers(ctx context.Context, thingID, eventSource string) ([]Trigger, error)
	// UpdateTrigger replaces the definition of a trigger (event source,
	// predicate, command, server code, title, description, metadata,
	// disabled, disabled reason, run, modified time). ErrNotFound if it
	// does not exist.
	UpdateTrigger(ctx context.Context, tr Trigger) error
	// SetTriggerRun records the evaluation state of a trigger, or returns
	// ErrNotFound.
	SetTriggerRun(ctx context.Context, thingID, id string, run TriggerRun) error
	// DeleteTrigger deletes a trigger and its results, or returns
	// ErrNotFound.
	DeleteTrigger(ctx context.Context, thingID, id string) error
	// AddTriggerResult stores the result of one server-code execution.
	// ErrNotFound if the trigger does not exist.
	AddTriggerResult(ctx context.Context, r TriggerResult) error
	// TriggerResults lists the results of a trigger, newest first, at most
	// limit (all when limit <= 0), after the position named by
	// paginationKey.
	TriggerResults(ctx context.Context, thingID, triggerID, paginationKey string, limit int) (results []TriggerResult, next string, err error)
}
