package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/thingif/thingif/internal/schema"
)

// migrationFS holds the schema migrations, named NNNN_description.sql and
// applied in the order of NNNN; numbers may have gaps, and a number below
// one already applied is applied when it arrives (applyMigrations). A
// released migration is never edited: a change to the schema is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the advisory lock key that serialises migrations of one
// database across the nodes that start at once.
const migrationLock = 0x7468696e67 // "thing"

// migration is one schema migration file (internal/schema).
type migration = schema.Migration

// loadMigrations reads the migrations under migrations/ in fsys, sorted by
// version.
func loadMigrations(fsys fs.FS) ([]migration, error) { return schema.Load(fsys) }

// migrate applies the migrations the database has not seen, in one
// transaction under migrationLock, and refuses a database whose schema is
// newer than this program's (a node of an older release on a database
// that a newer one migrated).
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		return err
	}
	return applyMigrations(ctx, pool, log, ms)
}

// applyMigrations applies each of ms that schema_migrations does not
// record, whatever the versions recorded around it: the numbers are
// reserved by branches that land in any order, so a database migrated to
// 4 by one release still gets a 2 that lands in the next. It refuses a
// database that records a version ms lacks.
func applyMigrations(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, ms []migration) error {
	latest := ms[len(ms)-1].Version
	var applied []migration
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at BIGINT  NOT NULL
)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		recorded, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if n := len(recorded); n > 0 && int(recorded[n-1]) > latest {
			return fmt.Errorf("database schema version %d is newer than this program's %d: run a thingif at least as new as the one that migrated it", recorded[n-1], latest)
		}
		known := make(map[int]bool, len(ms))
		for _, m := range ms {
			known[m.Version] = true
		}
		for _, v := range recorded {
			if !known[int(v)] {
				return fmt.Errorf("database has schema migration %d, which this program lacks: run the thingif that migrated it", v)
			}
		}
		for _, m := range ms {
			if slices.Contains(recorded, int32(m.Version)) {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, time.Now().UnixMilli()); err != nil {
				return fmt.Errorf("migration %s: record: %w", m.Name, err)
			}
			applied = append(applied, m)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range applied {
		log.Info("schema migration applied", "version", m.Version, "name", m.Name)
	}
	return nil
}
