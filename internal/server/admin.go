package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/store"
)

// ErrAppExists is returned by Offline.CreateApp for an app ID in use.
var ErrAppExists = errors.New("app exists")

// Offline is the store of a data directory that no server runs on, for
// the commands that manage apps (thingif app): the REST API has no notion
// of an operator above the apps, so apps are managed on the data directory
// itself. It holds the directory's lock, so it cannot be opened while a
// server runs there, nor a server started while it is open.
type Offline struct {
	lock *dirLock
	db   *sqlite.DB
}

// OpenOffline opens the store of dataDir, creating both if missing.
func OpenOffline(ctx context.Context, dataDir string) (*Offline, error) {
	if err := os.MkdirAll(dataDir, privateDir); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dataDir, pathReason(err))
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(dataDir, "thingif.db")
	db, err := sqlite.OpenConfig(ctx, sqlite.Config{Path: dbPath})
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("store %s: %w", dbPath, err)
	}
	return &Offline{lock: lock, db: db}, nil
}

// Apps returns the apps in creation order.
func (o *Offline) Apps(ctx context.Context) ([]store.App, error) { return o.db.Apps(ctx) }

// CreateApp creates app a, its key hashed at cost; ErrAppExists if the ID
// is taken (a key is never replaced behind the back of its users).
func (o *Offline) CreateApp(ctx context.Context, a AppCredential, cost secret.Cost) error {
	if _, err := ParseAppCredential(a.ID + ":" + a.Key); err != nil {
		return err
	}
	if _, err := o.db.App(ctx, a.ID); err == nil {
		return fmt.Errorf("app %q: %w", a.ID, ErrAppExists)
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("load app %q: %w", a.ID, err)
	}
	hash, err := secret.HashPassword(a.Key, cost)
	if err != nil {
		return fmt.Errorf("hash app key: %w", err)
	}
	if err := o.db.PutApp(ctx, store.App{ID: a.ID, KeyHash: hash, AllowAnonymous: true, CreatedAt: time.Now()}); err != nil {
		return fmt.Errorf("store app %q: %w", a.ID, err)
	}
	return nil
}

// Close closes the store, then releases the lock.
func (o *Offline) Close() error {
	err := o.db.Close()
	if lerr := o.lock.release(); err == nil && lerr != nil {
		err = fmt.Errorf("release data dir lock: %w", lerr)
	}
	return err
}
