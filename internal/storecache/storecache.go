// Package storecache keeps the store reads that every connect and every
// request makes in memory: API broker logins (installations by username),
// access tokens, things, and the state triggers each state upload looks up.
//
// Store wraps a store.Store role by role. The roles whose writes change what
// it caches (Things, Installations, Tokens, Users, Triggers) it implements
// in full: each of their methods invalidates what it changes or says in one
// line why it needs not, so that a method added to one of these roles does
// not compile until its invalidation is decided. The other roles (Apps,
// Commands, States, History) pass through untouched.
//
// Entries are invalidated by the writes made through the wrapper, so the
// cache is exact as long as this process is the store's only writer, which
// is how thingif runs (one process, one SQLite file). As a safety net for
// writes made behind its back, every entry also expires after Config.TTL.
//
// A read that races an invalidation of the same table never fills the
// cache: each table counts its invalidations, and a value read from the
// store is kept only if the count did not move during the read. Misses are
// not cached, so a token or an installation stored a moment ago is found.
package storecache

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// Defaults of Config.
const (
	DefaultTTL        = time.Minute
	DefaultMaxEntries = 200_000
)

// Config configures a Store.
type Config struct {
	// TTL bounds the life of an entry. If zero, DefaultTTL.
	TTL time.Duration
	// MaxEntries bounds each table (installations, tokens, things); a full
	// table drops an arbitrary entry for each one added. If zero,
	// DefaultMaxEntries.
	MaxEntries int
	// Now returns the current time. If nil, time.Now.
	Now func() time.Time
}

// Store is a store.Store with the reads of logins, tokens, things and
// state triggers cached.
type Store struct {
	// passThrough is the inner store as the roles Store leaves alone.
	passThrough
	// s is the inner store, for the roles Store implements itself.
	s   store.Store
	now func() time.Time

	installations table[string, store.Installation] // by username
	tokens        table[string, store.Token]        // by digest
	things        table[thingKey, store.Thing]
	stateTriggers table[string, []store.Trigger] // by thing ID
}

var _ store.Store = (*Store)(nil)

// passThrough are the roles of store.Store that Store passes through
// untouched: it caches nothing they read, and nothing they write changes
// what it caches. (One interface rather than the roles embedded one by
// one: an embedded store.Apps would be a field named Apps, hiding the
// method Apps.)
type passThrough interface {
	store.Apps
	store.Commands
	store.States
	store.History
}

type thingKey struct{ appID, thingID string }

// New wraps s.
func New(s store.Store, cfg Config) *Store {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Store{passThrough: s, s: s, now: cfg.Now}
	c.installations.altKey = func(in store.Installation) string { return in.ID }
	// An expired token is never served from memory: past its expiry the
	// store decides (DeleteExpiredTokens may have deleted it).
	c.tokens.until = func(t store.Token) time.Time { return t.ExpiresAt }
	c.installations.init(cfg)
	c.tokens.init(cfg)
	c.things.init(cfg)
	c.stateTriggers.init(cfg)
	return c
}

// Stats are the counters of one table.
type Stats struct {
	Hits, Misses uint64
	Entries      int
}

// Stats returns the counters of the installations, tokens, things and
// state-trigger tables.
func (c *Store) Stats() (installations, tokens, things, stateTriggers Stats) {
	return c.installations.stats(), c.tokens.stats(), c.things.stats(), c.stateTriggers.stats()
}

// Close closes the inner store.
func (c *Store) Close() error { return c.s.Close() }

// The writes below invalidate after the store call returns (whatever it
// returned): a read that started before the write and ends after the
// invalidation finds its fill void, one that starts after it reads the
// new row.

// Thing implements store.Things, cached.
func (c *Store) Thing(ctx context.Context, appID, thingID string) (store.Thing, error) {
	return c.things.load(thingKey{appID, thingID}, c.now(), func() (store.Thing, error) {
		return c.s.Thing(ctx, appID, thingID)
	})
}

// ThingByVendorID implements store.Things: a read, not cached.
func (c *Store) ThingByVendorID(ctx context.Context, appID, vendorThingID string) (store.Thing, error) {
	return c.s.ThingByVendorID(ctx, appID, vendorThingID)
}

// UpdateThing implements store.Things.
func (c *Store) UpdateThing(ctx context.Context, t store.Thing) error {
	defer c.things.drop(thingKey{t.AppID, t.ID})
	return c.s.UpdateThing(ctx, t)
}

// UpdateVendorThingID implements store.Things. The cached thing carries
// the vendorThingID and password hash, so it is dropped.
func (c *Store) UpdateVendorThingID(ctx context.Context, u store.VendorThingIDUpdate) error {
	defer c.things.drop(thingKey{u.AppID, u.ThingID})
	return c.s.UpdateVendorThingID(ctx, u)
}

// SaveOnboarding implements store.Things. An existing thing is dropped (a
// new one cannot be cached: misses are not). The installation is cached as
// it is stored: a thing connects to the API broker right after it
// onboarded. The token is new, and misses are not cached: nothing to drop.
func (c *Store) SaveOnboarding(ctx context.Context, o store.Onboarding) error {
	err := c.s.SaveOnboarding(ctx, o)
	if !o.NewThing {
		c.things.drop(thingKey{o.Thing.AppID, o.Thing.ID})
	}
	if err != nil {
		c.installations.dropAlt(o.Installation.ID)
		return err
	}
	c.installations.replace(o.Installation.ID, o.Installation.Username, o.Installation, c.now())
	return nil
}

// Things implements store.Things: a read, not cached.
func (c *Store) Things(ctx context.Context, appID, search, paginationKey string, limit int) ([]store.Thing, string, error) {
	return c.s.Things(ctx, appID, search, paginationKey, limit)
}

// PutEndNode implements store.Things: the gateway link is not part of a
// cached thing.
func (c *Store) PutEndNode(ctx context.Context, e store.EndNode) error {
	return c.s.PutEndNode(ctx, e)
}

// EndNode implements store.Things: a read, not cached.
func (c *Store) EndNode(ctx context.Context, thingID string) (store.EndNode, error) {
	return c.s.EndNode(ctx, thingID)
}

// PutInstallation implements store.Installations.
func (c *Store) PutInstallation(ctx context.Context, in store.Installation) error {
	defer c.installations.dropAlt(in.ID)
	return c.s.PutInstallation(ctx, in)
}

// Installation implements store.Installations: a read, not cached.
func (c *Store) Installation(ctx context.Context, appID, id string) (store.Installation, error) {
	return c.s.Installation(ctx, appID, id)
}

// InstallationByUsername implements store.Installations, cached.
func (c *Store) InstallationByUsername(ctx context.Context, username string) (store.Installation, error) {
	return c.installations.load(username, c.now(), func() (store.Installation, error) {
		return c.s.InstallationByUsername(ctx, username)
	})
}

// Installations implements store.Installations: a read, not cached.
func (c *Store) Installations(ctx context.Context, thingID string) ([]store.Installation, error) {
	return c.s.Installations(ctx, thingID)
}

// DeleteInstallation implements store.Installations.
func (c *Store) DeleteInstallation(ctx context.Context, id string) error {
	defer c.installations.dropAlt(id)
	return c.s.DeleteInstallation(ctx, id)
}

// PutToken implements store.Tokens: it only inserts (ErrConflict on a
// digest that exists), and misses are not cached.
func (c *Store) PutToken(ctx context.Context, t store.Token) error {
	return c.s.PutToken(ctx, t)
}

// Token implements store.Tokens, cached until the token's own expiry at
// most.
func (c *Store) Token(ctx context.Context, hash string) (store.Token, error) {
	return c.tokens.load(hash, c.now(), func() (store.Token, error) {
		return c.s.Token(ctx, hash)
	})
}

// DeleteToken implements store.Tokens.
func (c *Store) DeleteToken(ctx context.Context, hash string) error {
	defer c.tokens.drop(hash)
	return c.s.DeleteToken(ctx, hash)
}

// DeleteExpiredTokens implements store.Tokens: an expired token is never
// served from memory (New sets the tokens' until), so none to drop.
func (c *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	return c.s.DeleteExpiredTokens(ctx, now)
}

// PruneThingTokens implements store.Tokens. A pruned token is dropped like
// a revoked one, at once. A read racing the prune cannot put it back: the
// drops void every fill that started before them.
func (c *Store) PruneThingTokens(ctx context.Context, thingID string, keep int) ([]string, error) {
	hashes, err := c.s.PruneThingTokens(ctx, thingID, keep)
	for _, h := range hashes {
		c.tokens.drop(h)
	}
	if err != nil {
		// The prune may have committed without telling which rows it
		// deleted: forget every token rather than serve a deleted one.
		c.tokens.dropAll()
	}
	return hashes, err
}

// CreateUser implements store.Users: users are not cached.
func (c *Store) CreateUser(ctx context.Context, u store.User) error {
	return c.s.CreateUser(ctx, u)
}

// User implements store.Users: a read, not cached.
func (c *Store) User(ctx context.Context, appID, id string) (store.User, error) {
	return c.s.User(ctx, appID, id)
}

// UserByUsername implements store.Users: a read, not cached.
func (c *Store) UserByUsername(ctx context.Context, appID, username string) (store.User, error) {
	return c.s.UserByUsername(ctx, appID, username)
}

// Users implements store.Users: a read, not cached.
func (c *Store) Users(ctx context.Context, appID, paginationKey string, limit int) ([]store.User, string, error) {
	return c.s.Users(ctx, appID, paginationKey, limit)
}

// DeleteUser implements store.Users. The user's tokens are deleted with
// it; the cache does not know which digests they have, so it forgets every
// token (deleting a user is rare) rather than accept a deleted one.
func (c *Store) DeleteUser(ctx context.Context, appID, id string) error {
	defer c.tokens.dropAll()
	return c.s.DeleteUser(ctx, appID, id)
}

// CreateGroup implements store.Users: groups are not cached.
func (c *Store) CreateGroup(ctx context.Context, g store.Group) error {
	return c.s.CreateGroup(ctx, g)
}

// Group implements store.Users: a read, not cached.
func (c *Store) Group(ctx context.Context, appID, id string) (store.Group, error) {
	return c.s.Group(ctx, appID, id)
}

// GroupsOfUser implements store.Users: a read, not cached.
func (c *Store) GroupsOfUser(ctx context.Context, appID, userID string) ([]string, error) {
	return c.s.GroupsOfUser(ctx, appID, userID)
}

// AddOwner implements store.Users: owners are not part of a cached thing.
func (c *Store) AddOwner(ctx context.Context, appID, thingID, owner string, at time.Time) error {
	return c.s.AddOwner(ctx, appID, thingID, owner, at)
}

// ThingOwner implements store.Users: a read, not cached.
func (c *Store) ThingOwner(ctx context.Context, thingID string) (string, error) {
	return c.s.ThingOwner(ctx, thingID)
}

// CreateTrigger implements store.Triggers.
func (c *Store) CreateTrigger(ctx context.Context, tr store.Trigger, maxPerThing int) error {
	defer c.stateTriggers.drop(tr.ThingID)
	return c.s.CreateTrigger(ctx, tr, maxPerThing)
}

// Trigger implements store.Triggers: a read, not cached.
func (c *Store) Trigger(ctx context.Context, thingID, id string) (store.Trigger, error) {
	return c.s.Trigger(ctx, thingID, id)
}

// Triggers implements store.Triggers: a read, not cached.
func (c *Store) Triggers(ctx context.Context, thingID, paginationKey string, limit int) ([]store.Trigger, string, error) {
	return c.s.Triggers(ctx, thingID, paginationKey, limit)
}

// EnabledTriggers implements store.Triggers. The state triggers of a thing
// (usually none) are cached; each caller gets its own copy of the slice.
func (c *Store) EnabledTriggers(ctx context.Context, thingID, eventSource string) ([]store.Trigger, error) {
	if eventSource != store.EventStates {
		return c.s.EnabledTriggers(ctx, thingID, eventSource)
	}
	trs, err := c.stateTriggers.load(thingID, c.now(), func() ([]store.Trigger, error) {
		return c.s.EnabledTriggers(ctx, thingID, eventSource)
	})
	return slices.Clone(trs), err
}

// UpdateTrigger implements store.Triggers.
func (c *Store) UpdateTrigger(ctx context.Context, tr store.Trigger) error {
	defer c.stateTriggers.drop(tr.ThingID)
	return c.s.UpdateTrigger(ctx, tr)
}

// SetTriggerRun implements store.Triggers.
func (c *Store) SetTriggerRun(ctx context.Context, thingID, id string, run store.TriggerRun) error {
	defer c.stateTriggers.drop(thingID)
	return c.s.SetTriggerRun(ctx, thingID, id, run)
}

// DeleteTrigger implements store.Triggers.
func (c *Store) DeleteTrigger(ctx context.Context, thingID, id string) error {
	defer c.stateTriggers.drop(thingID)
	return c.s.DeleteTrigger(ctx, thingID, id)
}

// AddTriggerResult implements store.Triggers: results are not part of a
// cached trigger.
func (c *Store) AddTriggerResult(ctx context.Context, r store.TriggerResult) error {
	return c.s.AddTriggerResult(ctx, r)
}

// TriggerResults implements store.Triggers: a read, not cached.
func (c *Store) TriggerResults(ctx context.Context, thingID, triggerID, paginationKey string, limit int) ([]store.TriggerResult, string, error) {
	return c.s.TriggerResults(ctx, thingID, triggerID, paginationKey, limit)
}

// table is one bounded map of cached values with a time to live.
type table[K comparable, V any] struct {
	ttl time.Duration
	max int
	// altKey, if set, names a second key of a value (an installation's ID)
	// by which dropAlt finds its entry.
	altKey func(V) string
	// until, if set, names a time (zero: none) after which a value must
	// not be served from the table, even within ttl.
	until func(V) time.Time

	mu  sync.Mutex
	m   map[K]entry[V]
	alt map[string]K
	// gen counts invalidations; a fill started before one is dropped.
	gen          uint64
	hits, misses uint64
}

type entry[V any] struct {
	v       V
	expires time.Time
}

func (t *table[K, V]) init(cfg Config) {
	t.ttl, t.max = cfg.TTL, cfg.MaxEntries
	t.m = make(map[K]entry[V])
	if t.altKey != nil {
		t.alt = make(map[string]K)
	}
}

func (t *table[K, V]) stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{Hits: t.hits, Misses: t.misses, Entries: len(t.m)}
}

// load returns the cached value of k, or reads it with read and caches it.
// Errors (store.ErrNotFound included) are returned and not cached.
func (t *table[K, V]) load(k K, now time.Time, read func() (V, error)) (V, error) {
	t.mu.Lock()
	if e, ok := t.m[k]; ok && now.Before(e.expires) {
		t.hits++
		t.mu.Unlock()
		return e.v, nil
	}
	t.misses++
	gen := t.gen
	t.mu.Unlock()
	v, err := read()
	if err != nil {
		return v, err
	}
	t.putIf(gen, k, v, now)
	return v, nil
}

// putIf caches v under k unless the table was invalidated since gen.
func (t *table[K, V]) putIf(gen uint64, k K, v V, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen != gen {
		return
	}
	if _, ok := t.m[k]; !ok && len(t.m) >= t.max {
		for old := range t.m { // an arbitrary entry
			t.removeLocked(old)
			break
		}
	}
	t.removeLocked(k)
	expires := now.Add(t.ttl)
	if t.until != nil {
		if u := t.until(v); !u.IsZero() && u.Before(expires) {
			expires = u
		}
	}
	t.m[k] = entry[V]{v: v, expires: expires}
	if t.altKey != nil {
		t.alt[t.altKey(v)] = k
	}
}

func (t *table[K, V]) removeLocked(k K) {
	e, ok := t.m[k]
	if !ok {
		return
	}
	delete(t.m, k)
	if t.altKey != nil {
		delete(t.alt, t.altKey(e.v))
	}
}

// drop removes the entry of k and makes fills in progress void.
func (t *table[K, V]) drop(k K) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.removeLocked(k)
}

// dropAll empties the table and makes fills in progress void.
func (t *table[K, V]) dropAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	clear(t.m)
	if t.alt != nil {
		clear(t.alt)
	}
}

// replace drops the entry whose value has the second key alt, makes fills
// in progress void and caches v under k, all at once.
func (t *table[K, V]) replace(alt string, k K, v V, now time.Time) {
	t.mu.Lock()
	if old, ok := t.alt[alt]; ok {
		t.removeLocked(old)
	}
	t.gen++
	gen := t.gen
	t.mu.Unlock()
	t.putIf(gen, k, v, now)
}

// dropAlt removes the entry whose value has the second key alt and makes
// fills in progress void.
func (t *table[K, V]) dropAlt(alt string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	if k, ok := t.alt[alt]; ok {
		t.removeLocked(k)
	}
}
