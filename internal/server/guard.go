package server

import (
	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/postgres"
)

// newGuard returns the brute-force limit of the wrong thing passwords and
// app keys (Limits.BruteForce): on PostgreSQL one whose counts every node
// sharing the database adds to and obeys (postgres.Guard; it limits by this
// node's counts while the database is unavailable), on SQLite the in-memory
// limit.Limiter. openStore must have run.
func (s *Server) newGuard() limit.Guard {
	if s.pg != nil {
		return postgres.NewGuard(s.pg, s.cfg.Limits.BruteForce)
	}
	return limit.New(s.cfg.Limits.BruteForce)
}
