package server

import (
	"context"
	"fmt"
	"time"

	"github.com/thingif/thingif/internal/broker"
	"github.com/thingif/thingif/internal/cluster"
	"github.com/thingif/thingif/internal/httpapi"
	"github.com/thingif/thingif/internal/store"
)

// placeTimeout bounds the placement an onboarding answer waits for; past
// it the thing is told to use this node.
const placeTimeout = 2 * time.Second

// placement is httpapi.Config.APIBroker: this node's API broker on SQLite;
// on PostgreSQL, the node the cluster places the thing on.
func (s *Server) placement(self httpapi.BrokerAddr) func(ctx context.Context, appID, thingID string) httpapi.BrokerAddr {
	return func(ctx context.Context, _, thingID string) httpapi.BrokerAddr {
		if s.cluster == nil {
			return self
		}
		ctx, cancel := context.WithTimeout(ctx, placeTimeout)
		defer cancel()
		a, err := s.cluster.Place(ctx, thingID)
		if err != nil {
			s.log.Error("place thing: answering with this node", "error", err)
			return self
		}
		return httpapi.BrokerAddr{Host: a.Host, PortTCP: a.PortTCP, PortSSL: a.PortSSL, PortWS: a.PortWS, PortWSS: a.PortWSS}
	}
}

// joinCluster registers this node in the database's registry and starts
// its heartbeat and listener (internal/cluster), on PostgreSQL only; the
// API broker must exist and not serve yet, so that no connection precedes
// the node's membership.
func (s *Server) joinCluster(ctx context.Context, self httpapi.BrokerAddr) error {
	if s.pg == nil {
		return nil
	}
	c, err := cluster.Start(ctx, cluster.Config{
		Pool: s.pg.Pool(), Node: s.node, DeadAfter: s.cfg.NodeDeadAfter,
		Addr:   cluster.Addr{Host: self.Host, PortTCP: self.PortTCP, PortSSL: self.PortSSL, PortWS: self.PortWS, PortWSS: self.PortWSS},
		Logger: s.log.With("component", "cluster"),
	}, clusterBroker{s.api})
	if err != nil {
		return err
	}
	s.cluster = c
	return nil
}

// leaveCluster marks the node dead at once, so that new onboardings go to
// the others.
func (s *Server) leaveCluster(ctx context.Context) error {
	if s.cluster == nil {
		return nil
	}
	if err := s.cluster.Close(ctx); err != nil {
		return fmt.Errorf("leave cluster: %w", err)
	}
	return nil
}

// clusterSessions is the API broker's broker.Sessions: the cluster once
// joinCluster has run, which is before the broker serves.
type clusterSessions struct{ s *Server }

func (c clusterSessions) Connected(ctx context.Context, clientID, thingID string, id int64) error {
	return c.s.cluster.Connected(ctx, clientID, thingID, id)
}

func (c clusterSessions) Disconnected(ctx context.Context, clientID string, id int64) error {
	return c.s.cluster.Disconnected(ctx, clientID, id)
}

// clusterPusher is the Pusher of the handler and the trigger engine with
// several nodes: the command goes to this node's connections of the thing,
// and the other nodes that hold one are woken.
type clusterPusher struct{ s *Server }

func (p clusterPusher) Push(ctx context.Context, c store.Command) {
	p.s.api.Push(ctx, c)
	if p.s.cluster != nil {
		p.s.cluster.Wake(c.ThingID)
	}
}

// EndInstallation is httpapi.Revoker's: this node's connections with the
// installation end, and so do the other nodes'.
func (p clusterPusher) EndInstallation(ctx context.Context, thingID, installationID string) {
	p.s.api.EndInstallation(ctx, thingID, installationID)
	if p.s.cluster != nil {
		p.s.cluster.EndInstallation(thingID, installationID)
	}
}

// clusterBroker is the API broker as cluster.Broker.
type clusterBroker struct{ api *broker.API }

func (b clusterBroker) Subscribed(thingID string) int        { return b.api.Subscribed(thingID) }
func (b clusterBroker) PushPending(thingID string)           { b.api.PushPending(thingID) }
func (b clusterBroker) EndSession(clientID string, id int64) { b.api.EndSession(clientID, id) }
func (b clusterBroker) Connections() int64                   { return b.api.Connections() }

func (b clusterBroker) EndInstallation(ctx context.Context, thingID, installationID string) {
	b.api.EndInstallation(ctx, thingID, installationID)
}

func (b clusterBroker) Sessions() []cluster.Session {
	in := b.api.Sessions()
	out := make([]cluster.Session, len(in))
	for i, s := range in {
		out[i] = cluster.Session{ClientID: s.ClientID, ThingID: s.ThingID, ID: s.ID}
	}
	return out
}

// nodes is httpapi.Config.Nodes: the cluster's registry on PostgreSQL, this
// node alone on SQLite.
func (s *Server) nodes(self httpapi.BrokerAddr) httpapi.NodesFunc {
	started := time.Now()
	return func(ctx context.Context) ([]httpapi.Node, error) {
		if s.cluster == nil {
			return []httpapi.Node{{Name: s.node, BrokerAddr: self, Alive: true, Connections: s.api.Connections(),
				StartedAt: httpapi.Millis(started)}}, nil
		}
		ns, err := s.cluster.Nodes(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]httpapi.Node, len(ns))
		for i, n := range ns {
			out[i] = httpapi.Node{Name: n.Name, Alive: n.Alive, Connections: n.Connections, AssignedThings: n.Assigned,
				BrokerAddr: httpapi.BrokerAddr{Host: n.Host, PortTCP: n.PortTCP, PortSSL: n.PortSSL, PortWS: n.PortWS, PortWSS: n.PortWSS},
				StartedAt:  httpapi.Millis(n.StartedAt), HeartbeatAt: httpapi.Millis(n.HeartbeatAt)}
			if !n.Alive {
				out[i].Connections = 0
			}
		}
		return out, nil
	}
}
