package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/thingif/thingif/internal/store"
)

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// notFound turns sql.ErrNoRows into store.ErrNotFound.
func notFound(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func scanApp(s scanner) (store.App, error) {
	var a store.App
	var created int64
	if err := s.Scan(&a.ID, &a.KeyHash, &a.AllowAnonymous, &created); err != nil {
		return store.App{}, err
	}
	a.CreatedAt = fromMillis(created)
	return a, nil
}

// PutApp creates the app or replaces its key and settings. The creation time
// of an existing app is kept.
func (db *DB) PutApp(ctx context.Context, app store.App) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, db.ws.putApp).ExecContext(ctx, app.ID, app.KeyHash, app.AllowAnonymous, millis(app.CreatedAt)); err != nil {
			return fmt.Errorf("put app %q: %w", app.ID, translate(err))
		}
		return nil
	})
}

// App returns the app with the given ID, or store.ErrNotFound.
func (db *DB) App(ctx context.Context, id string) (store.App, error) {
	a, err := scanApp(db.rs.app.QueryRowContext(ctx, id))
	if err != nil {
		return store.App{}, notFound(err, fmt.Sprintf("app %q", id))
	}
	return a, nil
}

// Apps returns all apps ordered by creation time.
func (db *DB) Apps(ctx context.Context) ([]store.App, error) {
	rows, err := db.rs.apps.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	defer rows.Close()
	var apps []store.App
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, fmt.Errorf("apps: %w", err)
		}
		apps = append(apps, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	return apps, nil
}
