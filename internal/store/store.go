// Package store defines what thingif keeps: apps, things, installations (MQTT
// endpoints), tokens, commands and states, and the Store interface that every
// storage backend implements.
//
// Backends live in sibling packages named after the backend (internal/sqlite,
// later internal/postgres) and run the shared conformance suite in
// internal/store/storetest. Callers depend only on this package.
//
// Secrets never reach a Store in clear: thing passwords are stored as
// password hashes (internal/secret.HashPassword), endpoint passwords and tokens
// as SHA-256 digests (internal/secret.HashToken).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"time"
)

// Sentinel errors returned by every Store implementation. Callers test them
// with errors.Is; implementations may wrap them with context.
var (
	// ErrNotFound is returned when the requested record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a create would violate a uniqueness rule,
	// such as a second thing with the same vendorThingID in one app.
	ErrConflict = errors.New("already exists")
	// ErrInvalidPaginationKey is returned by a listing given a
	// paginationKey it did not issue.
	ErrInvalidPaginationKey = errors.New("invalid pagination key")
	// ErrTooManyPending is returned by CreateCommand when the thing already
	// has as many commands waiting to be delivered as the caller allows.
	ErrTooManyPending = errors.New("too many pending commands")
	// ErrTooManyTriggers is returned by CreateTrigger when the thing already
	// has as many triggers as the caller allows.
	ErrTooManyTriggers = errors.New("too many triggers")
	// ErrUnavailable is returned (wrapped) when the store cannot be
	// reached: a database server down or cut off. The caller may retry
	// later; nothing was stored.
	ErrUnavailable = errors.New("store unavailable")
)

// IsUnavailable reports whether err says the store could not be reached:
// ErrUnavailable, or a network error on the way to a database server
// (refused, reset, timed out).
func IsUnavailable(err error) bool {
	var ne net.Error
	return errors.Is(err, ErrUnavailable) || errors.As(err, &ne)
}

// App is a thing-if application: the unit that owns things, and whose ID and
// key devices present on the onboarding broker.
type App struct {
	ID string
	// KeyHash is the app key hashed with secret.HashPassword.
	KeyHash string
	// AllowAnonymous lets the token endpoint hand out a limited anonymous
	// token (good only for onboarding by thing) to a client-credentials
	// request whose secret is wrong, as Kii's embedded SDK sends a dummy
	// secret. See docs/protocol-decisions.md.
	AllowAnonymous bool
	CreatedAt      time.Time
}

// Thing is a registered device.
type Thing struct {
	ID            string // "th.…", assigned by the server
	AppID         string
	VendorThingID string // unique within the app
	// PasswordHash is the thing password hashed with secret.HashPassword.
	PasswordHash         string
	ThingType            string
	FirmwareVersion      string
	LayoutPosition       string          // STANDALONE, GATEWAY or ENDNODE; empty means STANDALONE
	Properties           json.RawMessage // thingProperties: a JSON object, or nil
	DataGroupingInterval string
	CreatedAt            time.Time
	ModifiedAt           time.Time
}

// EndNode is the gateway link of an end node: the thing behind a gateway,
// and whether the gateway last reported it connected.
type EndNode struct {
	ThingID    string
	GatewayID  string
	Online     bool
	ModifiedAt time.Time
}

// VendorThingIDUpdate is a change of a thing's vendorThingID (Kii's PUT
// …/things/{ID}/vendor-thing-id), the one change of a thing's identity
// besides onboarding.
type VendorThingIDUpdate struct {
	AppID         string
	ThingID       string
	VendorThingID string // the new one, unique within the app
	// PasswordHash, if not empty, replaces the thing's password hash
	// (secret.HashPassword); empty keeps the password.
	PasswordHash string
	ModifiedAt   time.Time
}

// Installation is one MQTT endpoint issued to a thing: the credentials and
// topic it uses on the API broker. Onboarding over MQTT keeps one
// installation per thing and rotates its password; the REST path creates one
// per POST /api/apps/{APP_ID}/installations.
type Installation struct {
	ID         string
	AppID      string
	ThingID    string
	DeviceType string // "MQTT"
	// MQTTTopic is both the client ID the thing must use on the API broker and
	// the topic it subscribes to for commands. Unique.
	MQTTTopic string
	// Username is the API broker username. Unique.
	Username string
	// PasswordHash is the endpoint password hashed with secret.HashToken.
	// Empty until an endpoint is issued.
	PasswordHash string
	// ExpiresAt is when the endpoint credentials stop working. Zero means the
	// endpoint has not been issued yet.
	ExpiresAt time.Time
	CreatedAt time.Time
}

// TokenKind says what a token allows.
type TokenKind string

// The token kinds.
const (
	// TokenApp is the app admin token: anything within its app.
	TokenApp TokenKind = "app"
	// TokenAnonymous is good only for onboarding by thing in its app.
	TokenAnonymous TokenKind = "anonymous"
	// TokenThing acts as the thing named by Subject, on itself only.
	TokenThing TokenKind = "thing"
	// TokenUser acts as the user named by Subject.
	TokenUser TokenKind = "user"
)

// Token is an issued bearer token. Only its digest is stored.
type Token struct {
	// Hash is secret.HashToken of the bearer string; the primary key.
	Hash      string
	AppID     string
	Kind      TokenKind
	Subject   string    // thing or user ID; empty for app and anonymous tokens
	ExpiresAt time.Time // zero: never expires
	CreatedAt time.Time
}

// Onboarding is everything one successful onboarding writes. SaveOnboarding
// applies it atomically: either all of it is stored or none.
type Onboarding struct {
	// Thing is inserted when NewThing is true (ErrConflict if its ID or
	// vendorThingID is taken), otherwise its mutable fields (ThingType,
	// FirmwareVersion, LayoutPosition, Properties, DataGroupingInterval,
	// ModifiedAt) are updated.
	Thing    Thing
	NewThing bool
	// PasswordHash, when not empty, replaces the password hash of an
	// existing thing (Thing.PasswordHash is not written on update): the
	// same password hashed again at a higher cost, made when it was last
	// checked. Ignored for a new thing, whose Thing.PasswordHash is stored.
	PasswordHash string
	// Installation is inserted or, when its ID exists, replaced.
	Installation Installation
	// Token is inserted.
	Token Token
}

// CommandState is the lifecycle state of a command.
type CommandState string

// Command states. A command starts SENDING, becomes DELIVERED once written to
// a live connection of its thing, and DONE or INCOMPLETE when the thing
// reports action results (INCOMPLETE when any action did not succeed).
const (
	CommandSending    CommandState = "SENDING"
	CommandDelivered  CommandState = "DELIVERED"
	CommandDone       CommandState = "DONE"
	CommandIncomplete CommandState = "INCOMPLETE"
)

// CommandExpired is the state of a command that was never delivered within
// the configured command expiry (see docs/protocol-decisions.md).
const CommandExpired CommandState = "EXPIRED"

// Command is a command sent by an app or owner to a thing.
type Command struct {
	ID            string
	AppID         string
	ThingID       string
	State         CommandState
	Issuer        string          // "user:{id}", "group:{id}" or empty
	Schema        string          // v1 form; empty for the trait (v2) form
	SchemaVersion int             // v1 form
	Actions       json.RawMessage // JSON array, as sent
	ActionResults json.RawMessage // JSON array, or nil before results arrive
	Title         string
	Description   string
	Metadata      json.RawMessage // JSON object, or nil
	CreatedAt     time.Time
	ModifiedAt    time.Time
}

// StateMode says how a state write combines with what is stored.
type StateMode int

// State write modes.
const (
	// StateReplace replaces the thing's whole state: every alias not in the
	// write is removed.
	StateReplace StateMode = iota
	// StateMerge merges each alias's top-level fields into the stored
	// object of that alias (creating it if absent), keeping other aliases.
	StateMerge
)

// V1Alias is the alias under which a schema-form (v1) state, a single JSON
// object, is stored.
const V1Alias = ""

// StateWrite is one state upload.
type StateWrite struct {
	ThingID string
	// Aliases maps each trait alias to its JSON object; a v1 state is stored
	// under V1Alias.
	Aliases map[string]json.RawMessage
	Mode    StateMode
	At      time.Time
}

// State is the latest state of one alias of a thing.
type State struct {
	ThingID    string
	Alias      string
	Body       json.RawMessage // JSON object
	ModifiedAt time.Time
}

// Store is the persistence interface of thingif: its roles, one per
// concept, and Close. Every method is safe for concurrent use. Times are
// stored with millisecond precision at least. The roles let a wrapper
// implement in full the roles it changes and pass the others through, so
// that a method added to a role it changes does not compile until the
// wrapper decides what to do with it (internal/storecache implements the
// roles it caches or invalidates, the server's timedStore those it times).
type Store interface {
	Apps
	Things
	Installations
	Tokens
	Commands
	States
	History
	Users
	Triggers

	// Close releases the store's resources.
	Close() error
}

// Apps stores the apps.
type Apps interface {
	// PutApp creates the app or replaces its key and settings.
	PutApp(ctx context.Context, app App) error
	// App returns the app with the given ID, or ErrNotFound.
	App(ctx context.Context, id string) (App, error)
	// Apps returns all apps ordered by creation time.
	Apps(ctx context.Context) ([]App, error)
}

// Things stores the things: their registration at onboarding, their fields, the list of an app's things and the gateway links of end nodes.
type Things interface {
	// Thing returns a thing of the app by its thing ID, or ErrNotFound.
	Thing(ctx context.Context, appID, thingID string) (Thing, error)
	// ThingByVendorID returns a thing of the app by its vendorThingID, or
	// ErrNotFound.
	ThingByVendorID(ctx context.Context, appID, vendorThingID string) (Thing, error)
	// UpdateThing replaces the mutable fields of an existing thing (see
	// Onboarding.Thing). ErrNotFound if it does not exist.
	UpdateThing(ctx context.Context, t Thing) error
	// UpdateVendorThingID changes a thing's vendorThingID and, when
	// u.PasswordHash is not empty, its password hash. ErrNotFound if the
	// thing does not exist, ErrConflict (and nothing changed) if another
	// thing of the app has that vendorThingID.
	UpdateVendorThingID(ctx context.Context, u VendorThingIDUpdate) error
	// SaveOnboarding stores one onboarding atomically.
	SaveOnboarding(ctx context.Context, o Onboarding) error
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
}

// Installations stores the installations (API broker endpoints) of things.
type Installations interface {
	// PutInstallation inserts or replaces an installation. ErrConflict if its
	// MQTTTopic or Username belongs to another installation.
	PutInstallation(ctx context.Context, in Installation) error
	// Installation returns an installation of the app by ID, or ErrNotFound.
	Installation(ctx context.Context, appID, id string) (Installation, error)
	// InstallationByUsername returns the installation with the given API
	// broker username, or ErrNotFound.
	InstallationByUsername(ctx context.Context, username string) (Installation, error)
	// Installations returns the installations of a thing, newest first.
	Installations(ctx context.Context, thingID string) ([]Installation, error)
	// DeleteInstallation removes an installation; deleting a missing one is
	// not an error.
	DeleteInstallation(ctx context.Context, id string) error
}

// Tokens stores access tokens, by digest.
type Tokens interface {
	// PutToken stores a token.
	PutToken(ctx context.Context, t Token) error
	// Token returns the token with the given digest, or ErrNotFound. Expired
	// tokens are returned too: the caller checks ExpiresAt.
	Token(ctx context.Context, hash string) (Token, error)
	// DeleteToken removes a token; deleting a missing one is not an error.
	DeleteToken(ctx context.Context, hash string) error
	// DeleteExpiredTokens deletes every token, of any kind, whose ExpiresAt
	// is set and not after now, and returns how many it deleted. Such a
	// token is refused already; this only frees its row.
	DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error)
	// PruneThingTokens keeps the keep most recently stored thing tokens of
	// a thing and deletes its others, returning the digests it deleted (so
	// that a cache can forget them). Stored order, not CreatedAt, decides:
	// a token just issued is kept even when the clock went back.
	PruneThingTokens(ctx context.Context, thingID string, keep int) ([]string, error)
}

// Commands stores commands and their lifecycle: SENDING, DELIVERED, DONE or INCOMPLETE, EXPIRED.
type Commands interface {
	// CreateCommand stores a new command durably before returning. When
	// maxPending > 0 and the thing already has maxPending or more commands in
	// state SENDING, it stores nothing and returns ErrTooManyPending: the
	// count and the insert are one atomic step, so concurrent creates cannot
	// pass the bound.
	CreateCommand(ctx context.Context, c Command, maxPending int) error
	// Command returns a command of the thing, or ErrNotFound.
	Command(ctx context.Context, thingID, id string) (Command, error)
	// Commands lists the commands of a thing, newest first, at most limit
	// (all when limit <= 0), starting after the position named by
	// paginationKey ("" for the first page). next is "" on the last page.
	Commands(ctx context.Context, thingID, paginationKey string, limit int) (cmds []Command, next string, err error)
	// PendingCommands returns the thing's commands still in state SENDING
	// in creation order, after the command afterID (empty: from the first),
	// at most limit (all when limit <= 0). An afterID the thing has no
	// command of reads as empty. Pages in this order stay consistent while
	// commands are added and change state: a command SENDING throughout is
	// on exactly one page.
	PendingCommands(ctx context.Context, thingID, afterID string, limit int) ([]Command, error)
	// PendingThings returns the IDs of the things that have commands in
	// state SENDING.
	PendingThings(ctx context.Context) ([]string, error)
	// MarkDelivered moves a command from SENDING to DELIVERED and reports
	// whether it did; a command in any other state is left alone.
	MarkDelivered(ctx context.Context, thingID, id string, at time.Time) (bool, error)
	// SetActionResults stores the action results of a command and moves it to
	// state (DONE or INCOMPLETE). It returns the updated command, or
	// ErrNotFound.
	SetActionResults(ctx context.Context, thingID, id string, results json.RawMessage, state CommandState, at time.Time) (Command, error)
	// ExpireCommands moves every command still SENDING that was created
	// before createdBefore to CommandExpired (modified at) and returns how
	// many it moved.
	ExpireCommands(ctx context.Context, createdBefore, at time.Time) (int64, error)
}

// States stores the latest state of each alias of a thing.
type States interface {
	// WriteStates applies one state upload atomically.
	WriteStates(ctx context.Context, w StateWrite) error
	// States returns the latest state of every alias of the thing, ordered
	// by alias; an empty slice when none was uploaded.
	States(ctx context.Context, thingID string) ([]State, error)
}

// History reads, aggregates and prunes the state history that WriteStates
// records: one entry per written alias per upload, holding the state the
// alias had after it. Entries are in history order: oldest ModifiedAt
// first and, among equal times, in the order they were stored (a
// backend's row sequence). history.go has the query types.
type History interface {
	// StateHistory returns a page of the entries of q.ThingID's q.Alias
	// whose ModifiedAt is within q.From and q.To, in history order, at most
	// q.Limit (all when q.Limit <= 0), starting right after the entry whose
	// Key is q.After (empty: from the first). next is "" when no entry
	// followed the page at the time of the read, and the Key of its last
	// entry otherwise. Keys are positions in history order: one stays valid
	// while entries are added and pruned, a page after it never repeats an
	// entry of the pages before, and an entry added later with a
	// ModifiedAt not before the key's is on a later page. A key the backend
	// could not have issued is ErrInvalidPaginationKey. A thing or alias
	// without history has no entries (not ErrNotFound).
	StateHistory(ctx context.Context, q HistoryQuery) (entries []HistoryEntry, next string, err error)
	// AggregateStateHistory computes q.Aggregates over every entry of
	// q.ThingID's q.Alias whose ModifiedAt is within q.From and q.To,
	// however many there are: all of them as one group, or grouped by
	// q.Interval. See HistoryAggregation for what each aggregate is. An
	// unknown Kind, a Field missing, or an Interval that is not a whole
	// number of ms is an error.
	AggregateStateHistory(ctx context.Context, q HistoryAggregation) ([]HistoryGroup, error)
	// PruneStateHistory deletes the history older than before and returns
	// how many entries it deleted. The latest states are kept.
	PruneStateHistory(ctx context.Context, before time.Time) (int64, error)
}

// Users stores the users and groups of an app, and the owners of things.
type Users interface {
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
}

// Triggers stores the triggers of things and the results of their server code.
type Triggers interface {
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
