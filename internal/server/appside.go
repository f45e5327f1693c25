package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thingif/thingif/internal/httpapi"
	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/trigger"
)

// Defaults of AppSideConfig.
const (
	// DefaultCommandExpiry is how long a command may stay SENDING (never
	// delivered) before it becomes EXPIRED.
	DefaultCommandExpiry = 7 * 24 * time.Hour
	// DefaultStateRetention is how long state history is kept.
	DefaultStateRetention = 90 * 24 * time.Hour
	// housekeepingEvery is how often expiry and retention run.
	housekeepingEvery = time.Minute
)

// AppSideConfig configures the app side's background work.
type AppSideConfig struct {
	// WebhookURL receives an HTTP POST (JSON, see trigger.WebhookRequest)
	// each time a server-code trigger fires, in place of Kii's hosted
	// server code. If empty, server-code triggers are refused.
	WebhookURL string
	// CommandExpiry is how long a command may stay SENDING before it
	// becomes EXPIRED and is no longer pushed. If zero,
	// DefaultCommandExpiry; if negative, commands never expire.
	CommandExpiry time.Duration
	// StateRetention is how long state history is kept. If zero,
	// DefaultStateRetention; if negative, forever.
	StateRetention time.Duration
}

func (c AppSideConfig) validate() error {
	if c.WebhookURL != "" && !(len(c.WebhookURL) > 7 && (c.WebhookURL[:7] == "http://" || c.WebhookURL[:8] == "https://")) {
		return errors.New("config: AppSide.WebhookURL must be an http:// or https:// URL")
	}
	return nil
}

// appSide is the running background work of the app side.
type appSide struct {
	triggers *trigger.Engine
	// leader runs the scheduler and housekeeping on one node of the
	// cluster (singletons.go); running says whether they run here.
	leader  leader
	running atomic.Bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// newAppSide creates the trigger engine and the leader; startAppSide runs
// them. On PostgreSQL the scheduler and housekeeping run under a lease,
// and state triggers are evaluated under a lock of the cluster's.
func (s *Server) newAppSide() error {
	cfg := trigger.Config{
		Store:      s.store,
		Pusher:     clusterPusher{s},
		WebhookURL: s.cfg.AppSide.WebhookURL,
		Logger:     s.log.With("component", "trigger"),
		// The same bound as commands sent over REST.
		MaxPendingCommands: httpapi.PendingBound(s.cfg.Limits.MaxPendingCommands),
	}
	s.app.leader = soleNode{}
	if s.pg != nil {
		l, err := s.pg.NewLeader(postgres.LeaderConfig{Node: s.node, Logger: s.log.With("component", "lease")})
		if err != nil {
			return fmt.Errorf("leader: %w", err)
		}
		s.app.leader = l
		cfg.Locker = pgLocker{s.pg}
		cfg.Rescan = pgRescan
	}
	eng, err := trigger.New(cfg)
	if err != nil {
		return fmt.Errorf("triggers: %w", err)
	}
	s.app.triggers = eng
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "thingif_singletons_running",
		Help: "1 on the node that runs the trigger scheduler and housekeeping for the cluster (holds their lease), 0 elsewhere."},
		func() float64 {
			if s.app.running.Load() {
				return 1
			}
			return 0
		}))
	return nil
}

// startAppSide runs the trigger scheduler and the housekeeping loop
// (command expiry, state history retention, expired tokens), while this
// node holds their lease, until stopAppSide.
func (s *Server) startAppSide() {
	ctx, cancel := context.WithCancel(context.Background())
	s.app.cancel = cancel
	s.app.wg.Go(func() { s.app.leader.Run(ctx, singletonsLease, s.runSingletons) })
}

// runSingletons runs the scheduler and housekeeping until ctx ends.
func (s *Server) runSingletons(ctx context.Context) {
	s.app.running.Store(true)
	defer s.app.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = s.app.triggers.Run(ctx) })
	wg.Go(func() {
		t := time.NewTicker(housekeepingEvery)
		defer t.Stop()
		for {
			s.housekeeping(ctx, time.Now())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// housekeeping expires old commands, prunes old state history and deletes
// expired tokens.
func (s *Server) housekeeping(ctx context.Context, now time.Time) {
	cfg := s.cfg.AppSide
	expiry, retention := cfg.CommandExpiry, cfg.StateRetention
	if expiry == 0 {
		expiry = DefaultCommandExpiry
	}
	if retention == 0 {
		retention = DefaultStateRetention
	}
	if expiry > 0 {
		if n, err := s.store.ExpireCommands(ctx, now.Add(-expiry), now); err != nil && ctx.Err() == nil {
			s.log.Error("expire commands", "error", err)
		} else if n > 0 {
			s.log.Info("commands expired", "count", n)
		}
	}
	if retention > 0 {
		if _, err := s.store.PruneStateHistory(ctx, now.Add(-retention)); err != nil && ctx.Err() == nil {
			s.log.Error("prune state history", "error", err)
		}
	}
	// App, anonymous and user tokens live a day, thing tokens as long as
	// --thing-token-ttl says (by default for ever); each expired one is
	// refused already, and here its row goes.
	if n, err := s.store.DeleteExpiredTokens(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Error("delete expired tokens", "error", err)
	} else if n > 0 {
		s.log.Debug("expired tokens deleted", "count", n)
	}
}

// stopAppSide stops the background work and waits for it, webhook calls
// included.
func (s *Server) stopAppSide() {
	if s.app.cancel != nil {
		s.app.cancel()
		s.app.wg.Wait()
		s.app.cancel = nil
	}
}
