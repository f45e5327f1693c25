// Package cluster lets several thingif nodes share one PostgreSQL database
// (docs/scale-out.md) with no protocol of their own: everything they tell
// each other goes through the database.
//
//   - Registry: each node keeps a row in nodes with its advertised host, its
//     four API-broker ports and a heartbeat on the database clock; a node
//     whose heartbeat is older than Config.DeadAfter is dead.
//   - Placement: Place gives each onboarding thing a live node, the one
//     with the fewest things placed, and keeps that node while it lives.
//   - Sessions: the sessions table names the node holding each MQTT client
//     ID. A connection on another node takes the client ID over: its node
//     notifies the old one, which ends the old connection.
//   - Wakes: after a command's commit, the node that stored it notifies the
//     other nodes holding a session of the command's thing, in batches
//     (notify.go), on the channel thingif_NODE that each node LISTENs on;
//     the woken node pushes what is pending. Only the nodes that hold the
//     thing are woken. Installations replaced on one node end their
//     connections on the others the same way.
//
// A node's listening connection may drop. Notifications sent meanwhile are
// lost, so once it listens again the node catches up: it pushes what is
// pending to every thing it holds and ends the sessions that moved.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultDeadAfter is how long a node may miss heartbeats before the
// others count it as dead: five heartbeats.
const DefaultDeadAfter = 5 * time.Second

// Addr is where a node's API broker listens, as the onboarding answer's
// mqttEndpoint gives it.
type Addr struct {
	Host                              string
	PortTCP, PortSSL, PortWS, PortWSS int
}

// Node is one node of the registry.
type Node struct {
	Name string
	Addr
	Alive bool
	// Connections is the node's API-broker connection count at its last
	// heartbeat; Assigned the things placed on it.
	Connections, Assigned  int64
	StartedAt, HeartbeatAt time.Time
}

// Session is one connection of this node's API broker.
type Session struct {
	ClientID, ThingID string
	ID                int64
}

// Broker is what the cluster needs of this node's API broker.
type Broker interface {
	// Subscribed returns the number of the thing's local connections that
	// commands are pushed to.
	Subscribed(thingID string) int
	// PushPending pushes the thing's pending commands to its local
	// connections.
	PushPending(thingID string)
	// EndSession ends the local connection of clientID whose session is
	// id: another node took the client ID over.
	EndSession(clientID string, id int64)
	// EndInstallation ends the local connections of the thing logged in
	// with the installation: another node replaced or deleted it.
	EndInstallation(ctx context.Context, thingID, installationID string)
	// Sessions lists the local connections.
	Sessions() []Session
	// Connections returns the number of connected clients.
	Connections() int64
}

// Config configures a Cluster.
type Config struct {
	// Pool is the PostgreSQL pool of the node's store. Required; the
	// listening connection is opened with its connection settings.
	Pool *pgxpool.Pool
	// Node is this node's name: ValidName. Required.
	Node string
	// Addr is what the onboarding answer names for things placed here.
	Addr Addr
	// DeadAfter: a node that has not beaten for this long is dead. If
	// zero, DefaultDeadAfter. Heartbeats go every DeadAfter/5.
	DeadAfter time.Duration
	// Logger receives the cluster's logs. If nil, logs are discarded.
	Logger *slog.Logger
}

// nameRE is what a node name may be: it becomes part of a channel name,
// which PostgreSQL bounds to 63 bytes.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$`)

// ValidName reports why name cannot name a node, or nil.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("node name %q: want 1 to 48 of A-Z a-z 0-9 . _ -, starting with a letter or digit", name)
	}
	return nil
}

// Cluster is this node's membership of the cluster.
type Cluster struct {
	cfg         Config
	log         *slog.Logger
	incarnation int64
	channel     string
	broker      Broker

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// listening is closed once the first LISTEN is in place (tests).
	listening     chan struct{}
	listeningOnce sync.Once
	// note queues what this node tells the others (notify.go).
	note notifier
	// others is whether another node was alive at the last heartbeat, or
	// said hello since: with none, there is nobody to wake.
	others atomic.Bool
}

// Start registers the node and runs its heartbeat and its listener until
// Close. A name held by a live node of another incarnation is waited for
// up to DeadAfter and a heartbeat (a node restarted at once after a crash
// finds its old row still alive), then refused.
func Start(ctx context.Context, cfg Config, b Broker) (*Cluster, error) {
	if cfg.Pool == nil {
		return nil, errors.New("cluster: Pool is required")
	}
	if err := ValidName(cfg.Node); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.DeadAfter < 500*time.Millisecond {
		return nil, fmt.Errorf("cluster: DeadAfter %v is under 500ms", cfg.DeadAfter)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{
		cfg: cfg, log: cfg.Logger.With("node", cfg.Node), broker: b,
		incarnation: randomID(), channel: Channel(cfg.Node), listening: make(chan struct{}),
	}
	if err := c.register(ctx); err != nil {
		return nil, err
	}
	// Sessions of this name's previous life are gone with it.
	if _, err := cfg.Pool.Exec(ctx, `DELETE FROM sessions WHERE node = $1`, cfg.Node); err != nil {
		return nil, fmt.Errorf("cluster: clear old sessions: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Go(func() { c.heartbeat(runCtx) })
	c.wg.Go(func() { c.listen(runCtx) })
	c.startNotifier(runCtx)
	return c, nil
}

// Channel is the notification channel of a node.
func Channel(node string) string { return "thingif_" + node }

// randomID returns a random positive int64.
func randomID() int64 {
	var b [8]byte
	rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:]) >> 1)
}

func (c *Cluster) beatEvery() time.Duration { return c.cfg.DeadAfter / 5 }

func (c *Cluster) register(ctx context.Context) error {
	a := c.cfg.Addr
	deadline := time.Now().Add(c.cfg.DeadAfter + c.beatEvery())
	logged := false
	for {
		var got string
		err := c.cfg.Pool.QueryRow(ctx, `INSERT INTO nodes (name, incarnation, host, port_tcp, port_ssl, port_ws, port_wss,
			started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $7, thingif_now_ms(), thingif_now_ms())
			ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation, host = excluded.host,
			port_tcp = excluded.port_tcp, port_ssl = excluded.port_ssl, port_ws = excluded.port_ws,
			port_wss = excluded.port_wss, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
			connections = 0
			WHERE nodes.heartbeat_at < thingif_now_ms() - $8
			RETURNING name`, c.cfg.Node, c.incarnation, a.Host, a.PortTCP, a.PortSSL, a.PortWS, a.PortWSS,
			c.cfg.DeadAfter.Milliseconds()).Scan(&got)
		switch {
		case err == nil:
			c.log.Info("node registered", "host", a.Host, "mqtt_tcp", a.PortTCP)
			return c.hello(ctx)
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("cluster: register node %q: %w", c.cfg.Node, err)
		case time.Now().After(deadline):
			return fmt.Errorf("cluster: node name %q is in use by a live node (heartbeat within %v): give this node another --node", c.cfg.Node, c.cfg.DeadAfter)
		}
		if !logged {
			c.log.Warn("node name held by a live node: waiting for its heartbeat to age", "dead_after", c.cfg.DeadAfter)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.beatEvery()):
		}
	}
}

// hello tells the live nodes that this one joined, so that they wake it
// from now on (they send no wakes while they see no other node), and
// learns whether there are any.
func (c *Cluster) hello(ctx context.Context) error {
	var others int64
	if err := c.cfg.Pool.QueryRow(ctx, `SELECT count(pg_notify('thingif_' || name, 'hello')) FROM nodes
		WHERE name <> $1 AND heartbeat_at >= thingif_now_ms() - $2`, c.cfg.Node, c.cfg.DeadAfter.Milliseconds()).Scan(&others); err != nil {
		return fmt.Errorf("cluster: greet the other nodes: %w", err)
	}
	c.others.Store(others > 0)
	return nil
}

// countOthers sets others from the registry.
func (c *Cluster) countOthers(ctx context.Context) error {
	var others int64
	if err := c.cfg.Pool.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE name <> $1
		AND heartbeat_at >= thingif_now_ms() - $2`, c.cfg.Node, c.cfg.DeadAfter.Milliseconds()).Scan(&others); err != nil {
		return err
	}
	c.others.Store(others > 0)
	return nil
}

// heartbeat beats every DeadAfter/5 with the broker's connection count.
func (c *Cluster) heartbeat(ctx context.Context) {
	t := time.NewTicker(c.beatEvery())
	defer t.Stop()
	failing := false
	var beats int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, c.cfg.DeadAfter)
		var others int64
		err := c.cfg.Pool.QueryRow(bctx, `WITH beat AS (UPDATE nodes SET heartbeat_at = thingif_now_ms(), connections = $3
			WHERE name = $1 AND incarnation = $2 RETURNING 1)
			SELECT (SELECT count(*) FROM beat), (SELECT count(*) FROM nodes WHERE name <> $1
			AND heartbeat_at >= thingif_now_ms() - $4)`, c.cfg.Node, c.incarnation, c.broker.Connections(),
			c.cfg.DeadAfter.Milliseconds()).Scan(&beats, &others)
		cancel()
		if err == nil {
			c.others.Store(others > 0)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				c.log.Error("heartbeat", "error", err)
			}
			failing = true
		case beats == 0:
			// Deemed dead and the name taken by a new incarnation: that
			// process is the node now.
			if !failing {
				c.log.Error("heartbeat: node name taken over by another process; this node is no longer in the registry")
			}
			failing = true
		default:
			if failing {
				c.log.Info("heartbeat back")
			}
			failing = false
		}
	}
}

// listen LISTENs on the node's channel on a connection of its own, and
// reconnects when that connection fails, catching up on what it missed.
func (c *Cluster) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for first := true; ctx.Err() == nil; first = false {
		err := c.listenOnce(ctx, !first)
		if ctx.Err() != nil {
			return
		}
		c.log.Error("notification listener lost; reconnecting", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (c *Cluster) listenOnce(ctx context.Context, catchUp bool) error {
	conn, err := pgx.ConnectConfig(ctx, c.cfg.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{c.channel}.Sanitize()); err != nil {
		return err
	}
	// Nodes that joined before this LISTEN sent their hello to nobody:
	// count them now; later ones reach this connection.
	if err := c.countOthers(ctx); err != nil {
		return err
	}
	c.listeningOnce.Do(func() { close(c.listening) })
	if catchUp {
		c.catchUp(ctx)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		c.dispatch(ctx, n.Payload)
	}
}

// Listening is closed once the node listens for notifications.
func (c *Cluster) Listening() <-chan struct{} { return c.listening }

// dispatch handles one notification:
//
//	wake THING          a command for THING was stored elsewhere
//	wake1 THING         the same, forwarded once by a node that no longer held THING
//	end CLIENT SESSION  CLIENT connected elsewhere: end its session SESSION here
//	endinst THING INST  installation INST of THING was replaced elsewhere: end its connections here
func (c *Cluster) dispatch(ctx context.Context, payload string) {
	verb, rest, _ := strings.Cut(payload, " ")
	switch verb {
	case "wake", "wake1":
		if c.broker.Subscribed(rest) > 0 {
			c.broker.PushPending(rest)
		} else if verb == "wake" {
			// The session moved while the command was being stored: the
			// trigger read where it was, not where it went.
			c.forward(ctx, rest)
		}
	case "hello":
		// A node joined: wakes have someone to go to, before the next
		// heartbeat says so.
		c.others.Store(true)
	case "end":
		clientID, id, _ := strings.Cut(rest, " ")
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			c.broker.EndSession(clientID, n)
		}
	case "endinst":
		if thingID, inst, ok := strings.Cut(rest, " "); ok {
			c.broker.EndInstallation(ctx, thingID, inst)
		}
	default:
		c.log.Warn("unknown notification", "verb", verb)
	}
}

// forward wakes the other nodes that hold a session of the thing now.
func (c *Cluster) forward(ctx context.Context, thingID string) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DeadAfter)
	defer cancel()
	if _, err := c.cfg.Pool.Exec(ctx, `SELECT pg_notify('thingif_' || node, 'wake1 ' || $1)
		FROM (SELECT DISTINCT node FROM sessions WHERE thing_id = $1 AND node <> $2) AS s`, thingID, c.cfg.Node); err != nil && ctx.Err() == nil {
		c.log.Error("forward wake", "error", err)
	}
}

// catchUp does what the notifications lost while not listening would have
// done: it pushes what is pending to every local thing and ends the local
// sessions whose client ID another node holds now.
func (c *Cluster) catchUp(ctx context.Context) {
	local := c.broker.Sessions()
	things := map[string]bool{}
	ids := make([]string, 0, len(local))
	for _, s := range local {
		things[s.ThingID] = true
		ids = append(ids, s.ClientID)
	}
	for t := range things {
		c.broker.PushPending(t)
	}
	rows, err := c.cfg.Pool.Query(ctx, `SELECT client_id, node, session FROM sessions WHERE client_id = ANY($1)`, ids)
	if err != nil {
		c.log.Error("catch up sessions", "error", err)
		return
	}
	holders := map[string]struct {
		node string
		id   int64
	}{}
	for rows.Next() {
		var id, node string
		var session int64
		if rows.Scan(&id, &node, &session) == nil {
			holders[id] = struct {
				node string
				id   int64
			}{node, session}
		}
	}
	rows.Close()
	for _, s := range local {
		if h, ok := holders[s.ClientID]; ok && (h.node != c.cfg.Node || h.id != s.ID) {
			c.broker.EndSession(s.ClientID, s.ID)
		}
	}
	c.log.Info("notification listener back: caught up", "things", len(things))
}

// Connected records that clientID (a thing's mqttTopic) is connected here
// as session id. If another node held it, that node is told to end its
// session, at commit, as MQTT's client-ID takeover does within one broker.
func (c *Cluster) Connected(ctx context.Context, clientID, thingID string, id int64) error {
	err := pgx.BeginFunc(ctx, c.cfg.Pool, func(tx pgx.Tx) error {
		// Two nodes taking one client ID at once: one after the other.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(5, hashtext($1))`, clientID); err != nil {
			return err
		}
		var oldNode string
		var oldID int64
		err := tx.QueryRow(ctx, `SELECT node, session FROM sessions WHERE client_id = $1`, clientID).Scan(&oldNode, &oldID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sessions (client_id, thing_id, node, session, connected_at)
			VALUES ($1, $2, $3, $4, thingif_now_ms()) ON CONFLICT (client_id) DO UPDATE SET thing_id = excluded.thing_id,
			node = excluded.node, session = excluded.session, connected_at = excluded.connected_at`,
			clientID, thingID, c.cfg.Node, id); err != nil {
			return err
		}
		if oldNode != "" && oldNode != c.cfg.Node {
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel(oldNode),
				"end "+clientID+" "+strconv.FormatInt(oldID, 10)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: record session: %w", err)
	}
	return nil
}

// Disconnected forgets session id of clientID, unless a newer session
// holds the client ID already.
func (c *Cluster) Disconnected(ctx context.Context, clientID string, id int64) error {
	if _, err := c.cfg.Pool.Exec(ctx, `DELETE FROM sessions WHERE client_id = $1 AND session = $2`, clientID, id); err != nil {
		return fmt.Errorf("cluster: forget session: %w", err)
	}
	return nil
}

// Place returns the node a thing is to use: the node it was placed on if
// that one is alive, otherwise the live node with the fewest things, which
// the thing is placed on from now on. With no live node in the registry
// (this node's heartbeat is failing too) it is this node.
func (c *Cluster) Place(ctx context.Context, thingID string) (Addr, error) {
	dead := c.cfg.DeadAfter.Milliseconds()
	var a Addr
	err := c.cfg.Pool.QueryRow(ctx, `SELECT n.host, n.port_tcp, n.port_ssl, n.port_ws, n.port_wss
		FROM thing_nodes t JOIN nodes n ON n.name = t.node
		WHERE t.thing_id = $1 AND n.heartbeat_at >= thingif_now_ms() - $2`, thingID, dead).
		Scan(&a.Host, &a.PortTCP, &a.PortSSL, &a.PortWS, &a.PortWSS)
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return c.cfg.Addr, fmt.Errorf("cluster: place thing: %w", err)
	}
	err = pgx.BeginFunc(ctx, c.cfg.Pool, func(tx pgx.Tx) error {
		// Placements take turns, so that each sees the counts the last one
		// left: a row lock on the emptiest node would let placements at
		// once all pick it. Only a thing's first placement (and one after
		// its node died) comes here.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(6, 0)`); err != nil {
			return err
		}
		var name string
		err := tx.QueryRow(ctx, `SELECT name, host, port_tcp, port_ssl, port_ws, port_wss FROM nodes
			WHERE heartbeat_at >= thingif_now_ms() - $1 ORDER BY assigned, name LIMIT 1`, dead).
			Scan(&name, &a.Host, &a.PortTCP, &a.PortSSL, &a.PortWS, &a.PortWSS)
		if errors.Is(err, pgx.ErrNoRows) {
			a, name = c.cfg.Addr, c.cfg.Node
		} else if err != nil {
			return err
		}
		var prev string
		err = tx.QueryRow(ctx, `SELECT node FROM thing_nodes WHERE thing_id = $1 FOR UPDATE`, thingID).Scan(&prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO thing_nodes (thing_id, node, assigned_at) VALUES ($1, $2, thingif_now_ms())
			ON CONFLICT (thing_id) DO UPDATE SET node = excluded.node, assigned_at = excluded.assigned_at`, thingID, name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET assigned = assigned + 1 WHERE name = $1`, name); err != nil {
			return err
		}
		if prev != "" {
			if _, err := tx.Exec(ctx, `UPDATE nodes SET assigned = assigned - 1 WHERE name = $1 AND assigned > 0`, prev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return c.cfg.Addr, fmt.Errorf("cluster: place thing: %w", err)
	}
	return a, nil
}

// Nodes lists the registry by name, alive or not.
func (c *Cluster) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := c.cfg.Pool.Query(ctx, `SELECT name, host, port_tcp, port_ssl, port_ws, port_wss, connections, assigned,
		started_at, heartbeat_at, heartbeat_at >= thingif_now_ms() - $1 FROM nodes ORDER BY name`, c.cfg.DeadAfter.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("cluster: nodes: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) {
		var n Node
		var started, beat int64
		err := r.Scan(&n.Name, &n.Host, &n.PortTCP, &n.PortSSL, &n.PortWS, &n.PortWSS, &n.Connections, &n.Assigned,
			&started, &beat, &n.Alive)
		n.StartedAt, n.HeartbeatAt = time.UnixMilli(started).UTC(), time.UnixMilli(beat).UTC()
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: nodes: %w", err)
	}
	return nodes, nil
}

// ThingNodes returns the nodes holding a session of the thing, by name.
func (c *Cluster) ThingNodes(ctx context.Context, thingID string) ([]string, error) {
	rows, err := c.cfg.Pool.Query(ctx, `SELECT DISTINCT node FROM sessions WHERE thing_id = $1 ORDER BY node`, thingID)
	if err != nil {
		return nil, fmt.Errorf("cluster: nodes of thing: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("cluster: nodes of thing: %w", err)
	}
	if nodes == nil {
		nodes = []string{} // none: offline, not unknown
	}
	return nodes, nil
}

// Node returns this node's name.
func (c *Cluster) Node() string { return c.cfg.Node }

// Close stops the heartbeat and the listener, forgets this node's sessions
// and marks it dead at once, so that its things are placed elsewhere
// without waiting for DeadAfter.
func (c *Cluster) Close(ctx context.Context) error {
	c.cancel()
	c.wg.Wait()
	var errs []error
	if _, err := c.cfg.Pool.Exec(ctx, `DELETE FROM sessions WHERE node = $1`, c.cfg.Node); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.cfg.Pool.Exec(ctx, `UPDATE nodes SET heartbeat_at = 0, connections = 0
		WHERE name = $1 AND incarnation = $2`, c.cfg.Node, c.incarnation); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}
