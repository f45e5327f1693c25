package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/thingif/thingif/internal/store"
)

func scanInstallation(s scanner) (store.Installation, error) {
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

func putInstallation(ctx context.Context, stmt *sql.Stmt, in store.Installation) error {
	if _, err := stmt.ExecContext(ctx, in.ID, in.AppID, in.ThingID, in.DeviceType, in.MQTTTopic, in.Username,
		in.PasswordHash, millis(in.ExpiresAt), millis(in.CreatedAt)); err != nil {
		return fmt.Errorf("put installation %q: %w", in.ID, translate(err))
	}
	return nil
}

// PutInstallation inserts or replaces an installation. It returns
// store.ErrConflict if its MQTTTopic or Username belongs to another
// installation, and store.ErrNotFound if its app or thing does not exist.
func (db *DB) PutInstallation(ctx context.Context, in store.Installation) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return putInstallation(ctx, tx.StmtContext(ctx, db.ws.putInstallation), in)
	})
}

// Installation returns an installation of the app by ID, or
// store.ErrNotFound.
func (db *DB) Installation(ctx context.Context, appID, id string) (store.Installation, error) {
	in, err := scanInstallation(db.rs.installation.QueryRowContext(ctx, appID, id))
	if err != nil {
		return store.Installation{}, notFound(err, fmt.Sprintf("installation %q", id))
	}
	return in, nil
}

// InstallationByUsername returns the installation with the given API broker
// username, or store.ErrNotFound.
func (db *DB) InstallationByUsername(ctx context.Context, username string) (store.Installation, error) {
	in, err := scanInstallation(db.rs.installationByUsername.QueryRowContext(ctx, username))
	if err != nil {
		return store.Installation{}, notFound(err, fmt.Sprintf("installation of username %q", username))
	}
	return in, nil
}

// Installations returns the installations of a thing, newest first.
func (db *DB) Installations(ctx context.Context, thingID string) ([]store.Installation, error) {
	rows, err := db.rs.installations.QueryContext(ctx, thingID)
	if err != nil {
		return nil, fmt.Errorf("installations of %q: %w", thingID, err)
	}
	defer rows.Close()
	var ins []store.Installation
	for rows.Next() {
		in, err := scanInstallation(rows)
		if err != nil {
			return nil, fmt.Errorf("installations of %q: %w", thingID, err)
		}
		ins = append(ins, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("installations of %q: %w", thingID, err)
	}
	return ins, nil
}

// DeleteInstallation removes an installation; deleting a missing one is not
// an error.
func (db *DB) DeleteInstallation(ctx context.Context, id string) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, db.ws.deleteInstallation).ExecContext(ctx, id); err != nil {
			return fmt.Errorf("delete installation %q: %w", id, err)
		}
		return nil
	})
}
