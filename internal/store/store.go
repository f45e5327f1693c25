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
)

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

// Store is the persistence interface of thingif. Every method is safe for
// concurrent use. Times are stored with millisecond precision at least.
type Store interface {
	// PutApp creates the app or replaces its key and settings.
	PutApp(ctx context.Context, app App) error
	// App returns the app with the given ID, or ErrNotFound.
	App(ctx context.Context, id string) (App, error)
	// Apps returns all apps ordered by creation time.
	Apps(ctx context.Context) ([]App, error)

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

	// WriteStates applies one state upload atomically.
	WriteStates(ctx context.Context, w StateWrite) error
	// States returns the latest state of every alias of the thing, ordered
	// by alias; an empty slice when none was uploaded.
	States(ctx context.Context, thingID string) ([]State, error)

	// AppSide holds the users, owners, history and triggers of the app side.
	AppSide

	// Close releases the store's resources.
	Close() error
}
