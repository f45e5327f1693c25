package cluster

import (
	"context"
	"sync"
	"time"
)

// The notifier sends what this node tells the others, in batches, from
// one goroutine: wakes (a command was stored here for a thing that another
// node holds) and installation ends (credentials replaced here). Callers
// never wait for the database: Wake and EndInstallation only queue.
//
// A batch is one statement that reads the holders of its things from
// sessions, after the commits that queued them (so a woken node finds the
// command), and NOTIFYs each holder once per message, in a transaction
// with synchronous_commit off: a NOTIFY transaction holds PostgreSQL's
// notification lock until its commit record is flushed, which for a
// message that only wakes, and can be lost (a wake lost is a wake the
// catch-up or the next subscribe makes), need not wait for the disk.

// maxBatch bounds the messages of one statement.
const maxBatch = 512

// note is one queued message about a thing: verb and its argument.
type note struct {
	thing, msg string
}

type notifier struct {
	mu     sync.Mutex
	queued []note
	wakes  map[string]bool // things with a wake queued: one is enough
	kick   chan struct{}
	sent   func(n int) // tests
}

func (c *Cluster) startNotifier(ctx context.Context) {
	c.note.wakes = map[string]bool{}
	c.note.kick = make(chan struct{}, 1)
	c.wg.Go(func() { c.notifyLoop(ctx) })
}

// Wake tells the other nodes that hold a session of the thing that a
// command was stored for it here, after its commit. While this node sees
// no other node alive (a cluster of one) it does nothing: a node that
// joins says hello first (Start), before it can hold any session.
func (c *Cluster) Wake(thingID string) {
	if !c.others.Load() {
		return
	}
	c.note.mu.Lock()
	if !c.note.wakes[thingID] {
		c.note.wakes[thingID] = true
		c.note.queued = append(c.note.queued, note{thingID, "wake " + thingID})
	}
	c.note.mu.Unlock()
	c.kickNotifier()
}

// EndInstallation tells the other nodes that hold a session of the thing
// to end the connections logged in with the installation (deleted, or
// given a new password here).
func (c *Cluster) EndInstallation(thingID, installationID string) {
	if !c.others.Load() {
		return
	}
	c.note.mu.Lock()
	c.note.queued = append(c.note.queued, note{thingID, "endinst " + thingID + " " + installationID})
	c.note.mu.Unlock()
	c.kickNotifier()
}

func (c *Cluster) kickNotifier() {
	select {
	case c.note.kick <- struct{}{}:
	default:
	}
}

func (c *Cluster) notifyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.note.kick:
		}
		for {
			c.note.mu.Lock()
			batch := c.note.queued[:min(len(c.note.queued), maxBatch)]
			c.note.queued = c.note.queued[len(batch):]
			for _, n := range batch {
				delete(c.note.wakes, n.thing)
			}
			if len(c.note.queued) == 0 {
				c.note.queued = nil // let the array go
			}
			c.note.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			c.send(ctx, batch)
		}
	}
}

// send NOTIFYs every other node holding a session of each note's thing.
// A failure is logged and the batch dropped: the woken nodes would only
// have pushed what their catch-up and the things' next subscribe push.
func (c *Cluster) send(ctx context.Context, batch []note) {
	things := make([]string, len(batch))
	msgs := make([]string, len(batch))
	for i, n := range batch {
		things[i], msgs[i] = n.thing, n.msg
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DeadAfter)
	defer cancel()
	start := time.Now()
	_, err := c.cfg.Pool.Exec(ctx, `SELECT set_config('synchronous_commit', 'off', true), pg_notify('thingif_' || s.node, m.msg)
		FROM unnest($1::text[], $2::text[]) AS m (thing_id, msg)
		JOIN (SELECT DISTINCT node, thing_id FROM sessions WHERE thing_id = ANY($1) AND node <> $3) AS s
		ON s.thing_id = m.thing_id`, things, msgs, c.cfg.Node)
	if err != nil && ctx.Err() == nil {
		c.log.Error("notify other nodes", "error", err, "messages", len(batch))
		return
	}
	if c.note.sent != nil {
		c.note.sent(len(batch))
	}
	if d := time.Since(start); d > time.Second {
		c.log.Warn("notify other nodes: slow", "took", d, "messages", len(batch))
	}
}
