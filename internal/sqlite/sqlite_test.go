package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/store/storetest"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func openTest(t *testing.T, path string) *DB {
	t.Helper()
	db, err := OpenConfig(t.Context(), Config{Path: path, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	return db
}

// seedThing stores app1 and its thing th.1.
func seedThing(t *testing.T, db *DB) {
	t.Helper()
	ctx := t.Context()
	must(t, db.PutApp(ctx, store.App{ID: "app1", KeyHash: "h"}))
	must(t, db.SaveOnboarding(ctx, store.Onboarding{
		Thing: store.Thing{ID: "th.1", AppID: "app1", VendorThingID: "v", PasswordHash: "p"}, NewThing: true,
		Installation: store.Installation{ID: "in1", AppID: "app1", ThingID: "th.1", MQTTTopic: "t", Username: "u"},
		Token:        store.Token{Hash: "tok", AppID: "app1", Kind: store.TokenThing},
	}))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "thingif.db"))
	})
}

func TestDurable(t *testing.T) {
	storetest.RunDurable(t, func(t *testing.T, dir string) store.Store {
		return openTest(t, filepath.Join(dir, "thingif.db"))
	})
}

func TestOpenCreatesParentDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "thingif.db")
	db := openTest(t, path)
	defer db.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("parent dir: %v", err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o700); got != want {
		t.Fatalf("parent dir mode=%v, want %v", got, want)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
}

func TestPragmas(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "thingif.db"))
	defer db.Close()
	ctx := t.Context()
	tests := []struct {
		name   string
		pool   *sql.DB
		pragma string
		want   string
	}{
		{"writer journal_mode", db.w, "journal_mode", "wal"},
		{"reader journal_mode", db.r, "journal_mode", "wal"},
		{"writer foreign_keys", db.w, "foreign_keys", "1"},
		{"reader foreign_keys", db.r, "foreign_keys", "1"},
		{"writer synchronous", db.w, "synchronous", "1"}, // NORMAL
		{"reader synchronous", db.r, "synchronous", "1"},
		{"writer busy_timeout", db.w, "busy_timeout", "5000"},
		{"reader busy_timeout", db.r, "busy_timeout", "5000"},
		{"writer query_only", db.w, "query_only", "0"},
		{"reader query_only", db.r, "query_only", "1"},
		{"writer wal_autocheckpoint", db.w, "wal_autocheckpoint", "10000"}, // the backstop; see checkpoint.go
		{"checkpointer synchronous", db.cp.db, "synchronous", "1"},
		{"checkpointer query_only", db.cp.db, "query_only", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if err := tt.pool.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
			}
			if !strings.EqualFold(got, tt.want) {
				t.Fatalf("PRAGMA %s=%q, want %q", tt.pragma, got, tt.want)
			}
		})
	}
	if _, err := db.r.ExecContext(ctx, "DELETE FROM apps"); err == nil {
		t.Fatal("write on a reader connection succeeded")
	}
}

func TestSynchronousFull(t *testing.T) {
	db, err := OpenConfig(t.Context(), Config{Path: filepath.Join(t.TempDir(), "x.db"), Synchronous: "full"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got int
	if err := db.w.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != 2 {
		t.Fatalf("synchronous=%d, want 2 (FULL)", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // a substring naming the bad field; "" for valid
	}{
		{"valid", Config{Path: "x.db"}, ""},
		{"valid full", Config{Path: "x.db", Synchronous: "FULL", ReadConns: 2, BusyTimeout: time.Second}, ""},
		{"empty path", Config{}, "Path"},
		{"memory", Config{Path: ":memory:"}, "Path"},
		{"uri", Config{Path: "file:x.db"}, "Path"},
		{"question mark", Config{Path: "x?.db"}, "Path"},
		{"negative busy timeout", Config{Path: "x.db", BusyTimeout: -1}, "BusyTimeout"},
		{"negative read conns", Config{Path: "x.db", ReadConns: -1}, "ReadConns"},
		{"bad synchronous", Config{Path: "x.db", Synchronous: "OFF"}, "Synchronous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate()=%v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate()=%v, want error naming %s", err, tt.wantErr)
			}
		})
	}
}

func appliedMigrations(t *testing.T, db *DB) map[int]int64 {
	t.Helper()
	rows, err := db.r.QueryContext(t.Context(), "SELECT version, applied_at FROM schema_migrations")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[int]int64{}
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		m[v] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMigrationsAppliedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "thingif.db")
	db := openTest(t, path)
	ctx := t.Context()
	must(t, db.PutApp(ctx, store.App{ID: "app1", KeyHash: "h"}))
	first := appliedMigrations(t, db)
	embedded, err := loadMigrations(migrationFS)
	must(t, err)
	if len(first) != len(embedded) || len(first) == 0 {
		t.Fatalf("applied %v, want all %d embedded migrations", first, len(embedded))
	}
	must(t, db.Close())

	time.Sleep(2 * time.Millisecond) // a re-run would record a later applied_at
	db = openTest(t, path)
	defer db.Close()
	second := appliedMigrations(t, db)
	if len(second) != len(first) {
		t.Fatalf("after reopen applied=%v, want %v", second, first)
	}
	for v, at := range first {
		if second[v] != at {
			t.Fatalf("migration %d re-applied: applied_at %d, then %d", v, at, second[v])
		}
	}
	// Re-running 0001 would have failed on CREATE TABLE or dropped data.
	if _, err := db.App(ctx, "app1"); err != nil {
		t.Fatalf("App after reopen: %v", err)
	}
}

func TestMigrateAppliesOnlyNew(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "m.db")
	w, err := sql.Open("sqlite", path)
	must(t, err)
	defer w.Close()
	w.SetMaxOpenConns(1)
	log := testLogger(t)

	v1 := fstest.MapFS{"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);")}}
	must(t, migrate(ctx, w, v1, log))
	v2 := fstest.MapFS{
		"migrations/0001_a.sql": v1["migrations/0001_a.sql"],
		"migrations/0002_b.sql": {Data: []byte("CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (2);")},
	}
	must(t, migrate(ctx, w, v2, log))
	must(t, migrate(ctx, w, v2, log))

	var n int
	must(t, w.QueryRowContext(ctx, "SELECT COUNT(*) FROM a").Scan(&n))
	if n != 2 {
		t.Fatalf("rows in a=%d, want 2 (each migration once)", n)
	}
	must(t, w.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n))
	if n != 2 {
		t.Fatalf("schema_migrations rows=%d, want 2", n)
	}

	// An older program refuses a newer schema.
	if err := migrate(ctx, w, v1, log); err == nil {
		t.Fatal("migrate with fewer migrations than applied: no error")
	}
}

func TestMigrateFailureRollsBack(t *testing.T) {
	ctx := t.Context()
	w, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db"))
	must(t, err)
	defer w.Close()
	w.SetMaxOpenConns(1)
	bad := fstest.MapFS{"migrations/0001_bad.sql": {Data: []byte("CREATE TABLE a (x INTEGER); THIS IS NOT SQL;")}}
	if err := migrate(ctx, w, bad, testLogger(t)); err == nil {
		t.Fatal("bad migration: no error")
	}
	var n int
	must(t, w.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'a'").Scan(&n))
	if n != 0 {
		t.Fatal("table of failed migration exists: not rolled back")
	}
	must(t, w.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n))
	if n != 0 {
		t.Fatalf("schema_migrations rows=%d after failed migration, want 0", n)
	}
}

func TestLoadMigrationsNames(t *testing.T) {
	tests := []struct {
		name string
		fsys fs.FS
		ok   bool
	}{
		{"ordered by number", fstest.MapFS{"migrations/0010_x.sql": {}, "migrations/0002_y.sql": {}}, true},
		{"no number", fstest.MapFS{"migrations/init.sql": {}}, false},
		{"zero", fstest.MapFS{"migrations/0000_x.sql": {}}, false},
		{"duplicate number", fstest.MapFS{"migrations/0001_x.sql": {}, "migrations/1_y.sql": {}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := loadMigrations(tt.fsys)
			if (err == nil) != tt.ok {
				t.Fatalf("loadMigrations: err=%v, want ok=%v", err, tt.ok)
			}
			for i := 1; i < len(ms); i++ {
				if ms[i-1].Version >= ms[i].Version {
					t.Fatalf("migrations out of order: %v", ms)
				}
			}
		})
	}
}

func TestCommandsBadPaginationKey(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "thingif.db"))
	defer db.Close()
	for _, key := range []string{"x", "0", "-1", "1.5", strings.Repeat("9", 40)} {
		if _, _, err := db.Commands(t.Context(), "th.1", key, 2); err == nil {
			t.Errorf("Commands with pagination key %q: no error", key)
		}
	}
}

func TestStoredForms(t *testing.T) {
	// Times are unix milliseconds (0 for zero), JSON is TEXT or NULL.
	db := openTest(t, filepath.Join(t.TempDir(), "thingif.db"))
	defer db.Close()
	ctx := t.Context()
	created := time.UnixMilli(1_750_000_000_123)
	must(t, db.PutApp(ctx, store.App{ID: "app1", KeyHash: "h", CreatedAt: created}))
	th := store.Thing{ID: "th.1", AppID: "app1", VendorThingID: "v", PasswordHash: "p"}
	must(t, db.SaveOnboarding(ctx, store.Onboarding{
		Thing: th, NewThing: true,
		Installation: store.Installation{ID: "in1", AppID: "app1", ThingID: "th.1", MQTTTopic: "t", Username: "u"},
		Token:        store.Token{Hash: "tok", AppID: "app1", Kind: store.TokenThing, Subject: "th.1"},
	}))
	var at int64
	must(t, db.r.QueryRowContext(ctx, "SELECT created_at FROM apps").Scan(&at))
	if at != created.UnixMilli() {
		t.Fatalf("stored created_at=%d, want %d", at, created.UnixMilli())
	}
	var typ string
	must(t, db.r.QueryRowContext(ctx, "SELECT typeof(properties) || '/' || typeof(created_at) FROM things").Scan(&typ))
	if typ != "null/integer" {
		t.Fatalf("stored types=%q, want null/integer", typ)
	}
	must(t, db.UpdateThing(ctx, store.Thing{ID: "th.1", AppID: "app1", Properties: []byte(`{"a":1}`)}))
	must(t, db.r.QueryRowContext(ctx, "SELECT typeof(properties) || '/' || modified_at FROM things").Scan(&typ))
	if typ != "text/0" {
		t.Fatalf("stored properties type and modified_at=%q, want text/0", typ)
	}
}

func TestStateHistory(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "thingif.db"))
	defer db.Close()
	seedThing(t, db)
	ctx := t.Context()
	writes := []store.StateWrite{
		{ThingID: "th.1", Mode: store.StateReplace, At: time.UnixMilli(1000), Aliases: map[string]json.RawMessage{"a": []byte(`{"x":1}`)}},
		{ThingID: "th.1", Mode: store.StateMerge, At: time.UnixMilli(2000), Aliases: map[string]json.RawMessage{"a": []byte(`{"y":2}`)}},
		{ThingID: "th.1", Mode: store.StateReplace, At: time.UnixMilli(3000), Aliases: map[string]json.RawMessage{"b": []byte(`{ "z" : 3 }`)}},
	}
	for _, w := range writes {
		must(t, db.WriteStates(ctx, w))
	}
	// A failed write leaves no history.
	if err := db.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateMerge, At: time.UnixMilli(4000),
		Aliases: map[string]json.RawMessage{"a": []byte(`{}`), "c": []byte(`[]`)}}); err == nil {
		t.Fatal("merge with array body: no error")
	}
	rows, err := db.r.QueryContext(ctx, "SELECT alias, body, at FROM state_history WHERE thing_id = 'th.1' ORDER BY seq")
	must(t, err)
	defer rows.Close()
	var got []string
	for rows.Next() {
		var alias, body string
		var at int64
		must(t, rows.Scan(&alias, &body, &at))
		got = append(got, alias+" "+body+" "+time.UnixMilli(at).UTC().Format("05.000"))
	}
	must(t, rows.Err())
	want := []string{`a {"x":1} 01.000`, `a {"x":1,"y":2} 02.000`, `b {"z":3} 03.000`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("state_history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestConflictErrorsWrapDriverError(t *testing.T) {
	// Callers can still see SQLite's message, and errors.Is works.
	db := openTest(t, filepath.Join(t.TempDir(), "thingif.db"))
	defer db.Close()
	ctx := t.Context()
	must(t, db.PutApp(ctx, store.App{ID: "app1", KeyHash: "h"}))
	must(t, db.PutToken(ctx, store.Token{Hash: "tok", AppID: "app1", Kind: store.TokenApp}))
	err := db.PutToken(ctx, store.Token{Hash: "tok", AppID: "app1", Kind: store.TokenApp})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("duplicate token: err=%v, want ErrConflict wrapping the UNIQUE violation", err)
	}
	err = db.PutToken(ctx, store.Token{Hash: "tok2", AppID: "nope", Kind: store.TokenApp})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token of unknown app: err=%v, want ErrNotFound", err)
	}
}

func TestOpenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "thingif.db"))
	if err == nil {
		db.Close()
		t.Fatal("Open with canceled context: no error")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCommandsRowidMigration: migration 0004 rebuilds commands on a plain
// rowid key and keeps every row, its seq and its indexes; new commands get
// larger seqs than the old ones, and the AUTOINCREMENT counter is gone.
func TestCommandsRowidMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "m.db")
	w, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	must(t, err)
	w.SetMaxOpenConns(1)
	upTo3 := fstest.MapFS{}
	for _, name := range []string{"0001_init.sql", "0002_appside.sql", "0003_sending_indexes.sql"} {
		b, err := migrationFS.ReadFile("migrations/" + name)
		must(t, err)
		upTo3["migrations/"+name] = &fstest.MapFile{Data: b}
	}
	must(t, migrate(ctx, w, upTo3, testLogger(t)))
	for _, q := range []string{
		`INSERT INTO apps (id, key_hash, created_at) VALUES ('app1', 'h', 0)`,
		`INSERT INTO things (id, app_id, vendor_thing_id, password_hash, created_at, modified_at) VALUES ('th.1', 'app1', 'v', 'p', 0, 0)`,
		`INSERT INTO commands (id, app_id, thing_id, state, created_at, modified_at) VALUES ('c1', 'app1', 'th.1', 'SENDING', 1, 1)`,
		`INSERT INTO commands (id, app_id, thing_id, state, created_at, modified_at) VALUES ('c2', 'app1', 'th.1', 'DONE', 2, 2)`,
		`INSERT INTO commands (id, app_id, thing_id, state, created_at, modified_at) VALUES ('c3', 'app1', 'th.1', 'DELIVERED', 3, 3)`,
	} {
		_, err := w.ExecContext(ctx, q)
		must(t, err)
	}
	must(t, w.Close())

	db := openTest(t, path) // applies 0004
	defer db.Close()
	for id, want := range map[string]store.CommandState{"c1": store.CommandSending, "c2": store.CommandDone, "c3": store.CommandDelivered} {
		if c, err := db.Command(ctx, "th.1", id); err != nil || c.State != want {
			t.Fatalf("%s after the migration: %v, %v; want %s", id, c.State, err, want)
		}
	}
	if pending, err := db.PendingCommands(ctx, "th.1", "", 0); err != nil || len(pending) != 1 || pending[0].ID != "c1" {
		t.Fatalf("PendingCommands after the migration = %v, %v; want c1", pending, err)
	}
	must(t, db.CreateCommand(ctx, store.Command{ID: "c4", AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0))
	var seqs []int64
	rows, err := db.r.QueryContext(ctx, `SELECT seq FROM commands ORDER BY seq`)
	must(t, err)
	for rows.Next() {
		var s int64
		must(t, rows.Scan(&s))
		seqs = append(seqs, s)
	}
	must(t, rows.Err())
	rows.Close()
	if !slices.Equal(seqs, []int64{1, 2, 3, 4}) {
		t.Fatalf("seqs %v, want [1 2 3 4]: the old ones kept, the new one after them", seqs)
	}
	var n int
	must(t, db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'commands'`).Scan(&n))
	if n != 0 {
		t.Fatal("sqlite_sequence still counts commands")
	}
	var sqlText string
	must(t, db.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE name = 'commands'`).Scan(&sqlText))
	if strings.Contains(sqlText, "AUTOINCREMENT") {
		t.Fatalf("commands is still %s", sqlText)
	}
}

// TestDeleteExpiredTokensInChunks: more expired tokens than one chunk are
// all deleted, and counted, across chunks; tokens that never expire stay.
func TestDeleteExpiredTokensInChunks(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "thingif.db"))
	defer db.Close()
	seedThing(t, db)
	ctx := t.Context()
	const expired, forever = 2*housekeepingChunk + 500, 300
	if _, err := db.exec(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO tokens (hash, app_id, kind, subject, expires_at, created_at)
		SELECT 'h' || i, 'app1', 'user', 'u', CASE WHEN i <= ? THEN 1000 + i ELSE 0 END, 1 FROM n`,
		expired+forever, expired); err != nil {
		t.Fatal(err)
	}
	n, err := db.DeleteExpiredTokens(ctx, time.UnixMilli(1000+expired))
	must(t, err)
	if got, want := n, int64(expired); got != want {
		t.Fatalf("DeleteExpiredTokens=%d, want %d", got, want)
	}
	var left int
	must(t, db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM tokens WHERE kind = 'user'").Scan(&left))
	if got, want := left, forever; got != want {
		t.Fatalf("%d tokens left, want %d", got, want)
	}
}
