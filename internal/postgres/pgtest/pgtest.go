// Package pgtest gives tests a PostgreSQL database of their own: a new
// schema in the server named by THINGIF_TEST_POSTGRES (scripts/postgres-tmp
// starts a throwaway one; .ci/run does), dropped when the test ends.
//
// Without THINGIF_TEST_POSTGRES a test that asks is skipped, or fails under
// THINGIF_INTEGRATION=1, where every test must run.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN is the variable that names the test server.
const EnvDSN = "THINGIF_TEST_POSTGRES"

var schemas atomic.Int64

// ServerDSN returns THINGIF_TEST_POSTGRES, skipping (or failing) t without
// it.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		msg := EnvDSN + " is not set: start a server with scripts/postgres-tmp"
		if os.Getenv("THINGIF_INTEGRATION") == "1" {
			t.Fatalf("%s (THINGIF_INTEGRATION=1 requires it)", msg)
		}
		t.Skip(msg)
	}
	return dsn
}

// DSN creates an empty schema for t in the test server and returns a DSN
// whose connections use it (search_path), so that every table a store
// creates is t's own. The schema is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	server := ServerDSN(t)
	schema := fmt.Sprintf("t%d_%d_%s", os.Getpid(), schemas.Add(1), strings.ToLower(time.Now().Format("150405")))
	exec(t, server, `CREATE SCHEMA `+schema)
	t.Cleanup(func() { exec(t, server, `DROP SCHEMA `+schema+` CASCADE`) })
	return WithSchema(t, server, schema)
}

// WithSchema returns dsn with its connections' search_path set to schema.
func WithSchema(t testing.TB, dsn, schema string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: not a URL: %v", EnvDSN, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Exec runs one statement on dsn, failing t on an error.
func Exec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	exec(t, dsn, sql, args...)
}

func exec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}
