package postgres

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thingif/thingif/internal/postgres/pgtest"
)

// TestMigrationsLandingOutOfOrder: migration numbers are reserved by
// branches that land in any order, so a database migrated to 4 still gets
// the 2 and 3 that a later release brings.
func TestMigrationsLandingOutOfOrder(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	log := slog.New(slog.DiscardHandler)
	m := func(v int, table string) migration {
		return migration{Version: v, Name: table + ".sql", SQL: `CREATE TABLE ` + table + ` (x INTEGER)`}
	}
	if err := applyMigrations(t.Context(), pool, log, []migration{m(1, "one"), m(4, "four")}); err != nil {
		t.Fatal(err)
	}
	if err := applyMigrations(t.Context(), pool, log, []migration{m(1, "one"), m(2, "two"), m(3, "three"), m(4, "four")}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"one", "two", "three", "four"} {
		if _, err := pool.Exec(t.Context(), `SELECT x FROM `+table); err != nil {
			t.Errorf("table %s: %v", table, err)
		}
	}
	err = applyMigrations(t.Context(), pool, log, []migration{m(1, "one"), m(3, "three"), m(4, "four")})
	if err == nil || !strings.Contains(err.Error(), "schema migration 2, which this program lacks") {
		t.Fatalf("a program without migration 2: %v", err)
	}
}
