package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/thingif/thingif/internal/store"
)

const appCols = "id, key_hash, allow_anonymous, created_at"

func scanApp(s pgx.Row) (store.App, error) {
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
	if _, err := db.pool.Exec(ctx, `INSERT INTO apps (`+appCols+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET key_hash = excluded.key_hash, allow_anonymous = excluded.allow_anonymous`,
		app.ID, app.KeyHash, app.AllowAnonymous, millis(app.CreatedAt)); err != nil {
		return fmt.Errorf("put app %q: %w", app.ID, translate(err))
	}
	return nil
}

// App returns the app with the given ID, or store.ErrNotFound.
func (db *DB) App(ctx context.Context, id string) (store.App, error) {
	a, err := scanApp(db.pool.QueryRow(ctx, `SELECT `+appCols+` FROM apps WHERE id = $1`, id))
	if err != nil {
		return store.App{}, notFound(err, fmt.Sprintf("app %q", id))
	}
	return a, nil
}

// Apps returns all apps ordered by creation time.
func (db *DB) Apps(ctx context.Context) ([]store.App, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+appCols+` FROM apps ORDER BY created_at, id`)
	apps, _, err := collect(rows, err, func(r pgx.Rows) (store.App, int64, error) {
		a, err := scanApp(r)
		return a, 0, err
	})
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	if len(apps) == 0 {
		return nil, nil
	}
	return apps, nil
}
