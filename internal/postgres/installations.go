package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/thingif/thingif/internal/store"
)

const installationCols = "id, app_id, thing_id, device_type, mqtt_topic, username, password_hash, expires_at, created_at"

func scanInstallation(s pgx.Row) (store.Installation, error) {
	var in store.Installation
	var expires, created int64
	if err := s.Scan(&in.ID, &in.AppID, &in.ThingID, &in.DeviceType, &in.MQTTTopic, &in.Username,
		&in.PasswordHash, &expires, &created); err != nil {
		return store.Installation{}, err
	}
	in.ExpiresAt = fromMillis(expires)
	in.CreatedAt = fromMillis(created)
	return in, nil
}

func putInstallation(ctx context.Context, q querier, in store.Installation) error {
	if _, err := q.Exec(ctx, `INSERT INTO installations (`+installationCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET app_id = excluded.app_id, thing_id = excluded.thing_id,
		device_type = excluded.device_type, mqtt_topic = excluded.mqtt_topic, username = excluded.username,
		password_hash = excluded.password_hash, expires_at = excluded.expires_at, created_at = excluded.created_at`,
		in.ID, in.AppID, in.ThingID, in.DeviceType, in.MQTTTopic, in.Username,
		in.PasswordHash, millis(in.ExpiresAt), millis(in.CreatedAt)); err != nil {
		return fmt.Errorf("put installation %q: %w", in.ID, translate(err))
	}
	return nil
}

// PutInstallation inserts or replaces an installation. It returns
// store.ErrConflict if its MQTTTopic or Username belongs to another
// installation, and store.ErrNotFound if its app or thing does not exist.
func (db *DB) PutInstallation(ctx context.Context, in store.Installation) error {
	return putInstallation(ctx, db.pool, in)
}

// Installation returns an installation of the app by ID, or
// store.ErrNotFound.
func (db *DB) Installation(ctx context.Context, appID, id string) (store.Installation, error) {
	in, err := scanInstallation(db.pool.QueryRow(ctx, `SELECT `+installationCols+` FROM installations
		WHERE app_id = $1 AND id = $2`, appID, id))
	if err != nil {
		return store.Installation{}, notFound(err, fmt.Sprintf("installation %q", id))
	}
	return in, nil
}

// InstallationByUsername returns the installation with the given API broker
// username, or store.ErrNotFound.
func (db *DB) InstallationByUsername(ctx context.Context, username string) (store.Installation, error) {
	in, err := scanInstallation(db.pool.QueryRow(ctx, `SELECT `+installationCols+` FROM installations
		WHERE username = $1`, username))
	if err != nil {
		return store.Installation{}, notFound(err, fmt.Sprintf("installation of username %q", username))
	}
	return in, nil
}

// Installations returns the installations of a thing, newest first.
func (db *DB) Installations(ctx context.Context, thingID string) ([]store.Installation, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+installationCols+` FROM installations WHERE thing_id = $1
		ORDER BY created_at DESC, seq DESC`, thingID)
	ins, _, err := collect(rows, err, func(r pgx.Rows) (store.Installation, int64, error) {
		in, err := scanInstallation(r)
		return in, 0, err
	})
	if err != nil {
		return nil, fmt.Errorf("installations of %q: %w", thingID, err)
	}
	if len(ins) == 0 {
		return nil, nil
	}
	return ins, nil
}

// DeleteInstallation removes an installation; deleting a missing one is not
// an error.
func (db *DB) DeleteInstallation(ctx context.Context, id string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM installations WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete installation %q: %w", id, err)
	}
	return nil
}
