package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/storecache"
)

// pgCacheTTL bounds how long a node serves a login, token or thing from
// memory on PostgreSQL, where other nodes write behind its back: a token
// revoked or an installation replaced on one node is refused by every node
// within it (issue 11's "within a second"; docs/scale-out.md).
const pgCacheTTL = 900 * time.Millisecond

// openStore opens the store that cfg names, the cache over it and their
// metrics: SQLite in the data directory by default, PostgreSQL when
// cfg.Store is a URL.
func (s *Server) openStore(ctx context.Context) error {
	// The store's warnings and errors (a tightened file mode, writes
	// failing) are logged; its info records (migrations) are not, as before.
	cacheCfg := storecache.Config{}
	if s.cfg.Store != "" {
		pgLog := slog.New(minLevel{s.log.Handler(), slog.LevelWarn}).With("component", "postgres")
		db, err := postgres.Open(ctx, postgres.Config{DSN: s.cfg.Store, Logger: pgLog, Node: s.node})
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		s.pg = db
		cacheCfg.TTL = pgCacheTTL
		// The cache sits outside the timing: thingif_store_seconds times
		// the calls that reach the database.
		s.cache = storecache.New(newTimedStore(db, s.metrics), cacheCfg)
		s.metrics.addPostgresGauges(db)
	} else {
		dbPath := filepath.Join(s.cfg.DataDir, "thingif.db")
		dbLog := slog.New(minLevel{s.log.Handler(), slog.LevelWarn}).With("component", "sqlite")
		db, err := sqlite.OpenConfig(ctx, sqlite.Config{Path: dbPath, Logger: dbLog})
		if err != nil {
			return fmt.Errorf("store %s: %w", dbPath, err)
		}
		s.db = db
		s.cache = storecache.New(newTimedStore(db, s.metrics), cacheCfg)
		s.metrics.addSQLiteCounters(db)
	}
	s.store = s.cache
	s.metrics.addCacheCounters(s.cache)
	backend := "sqlite"
	if s.pg != nil {
		backend = "postgres"
	}
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "thingif_node_info",
		Help:        "Always 1; its labels name this node and its store.",
		ConstLabels: prometheus.Labels{"node": s.node, "store": backend}}, func() float64 { return 1 }))
	return nil
}
