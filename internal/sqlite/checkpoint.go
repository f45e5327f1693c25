package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"sync/atomic"
	"time"
)

// Checkpoints.
//
// SQLite copies the WAL back into the database file (a checkpoint) from the
// connection whose commit made the WAL pass wal_autocheckpoint pages, inside
// that commit. With one writer that is the writer's commit: every write
// queued behind it waits for the copy and its two fsyncs. Instead, the
// writer's automatic checkpoint is set high (backstopPages, a bound on the
// WAL should the checkpointer fall behind), and a checkpointer goroutine on a
// connection of its own runs PASSIVE checkpoints, which take no lock that
// writes or reads wait for, at most every checkpointInterval while there are
// commits. Once a checkpoint has copied every frame, the next write starts
// the WAL over from its beginning.

const (
	checkpointInterval = 100 * time.Millisecond
	backstopPages      = 10000 // 40 MiB of 4 KiB pages
)

type checkpointer struct {
	db   *sql.DB
	log  *slog.Logger
	kick chan struct{}
	quit chan struct{}
	done chan struct{}
	runs atomic.Uint64
}

func newCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	c := &checkpointer{db: db, log: log, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// committed tells the checkpointer that the WAL grew.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.quit:
			return
		case <-c.kick:
		}
		c.checkpoint()
		select {
		case <-c.quit:
			return
		case <-time.After(checkpointInterval):
		}
	}
}

func (c *checkpointer) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var busy, frames, copied int
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		c.log.Warn("sqlite checkpoint", "error", err)
		return
	}
	c.runs.Add(1)
}

// stop ends the checkpointer; the last checkpoint is the writer's, at
// close.
func (c *checkpointer) stop() {
	select {
	case <-c.quit:
	default:
		close(c.quit)
	}
	<-c.done
}
