package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// Node is one node serving the store, as GET …/nodes lists it.
type Node struct {
	Name string `json:"name"`
	BrokerAddr
	Alive bool `json:"alive"`
	// Connections is the node's API-broker connection count (at its last
	// heartbeat, with several nodes); AssignedThings the things placed on
	// it by onboarding.
	Connections    int64 `json:"connections"`
	AssignedThings int64 `json:"assignedThings"`
	StartedAt      int64 `json:"startedAt"`   // ms
	HeartbeatAt    int64 `json:"heartbeatAt"` // ms; 0 without a registry
}

// NodesFunc lists the nodes serving the store (Config.Nodes).
type NodesFunc func(ctx context.Context) ([]Node, error)

// listNodes answers {"nodes":[…]} by name: the nodes on the store's
// database and whether they live (app admin only; the API has no operator
// above the apps, and every app's admin sees the same nodes).
func (h *Handler) listNodes(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	if p.kind != store.TokenApp {
		return errWrongToken.with("the nodes are listed with an app token")
	}
	var nodes []Node
	if h.cfg.Nodes != nil {
		if nodes, err = h.cfg.Nodes(r.Context()); err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
	}
	if nodes == nil {
		nodes = []Node{}
	}
	writeJSON(w, http.StatusOK, struct {
		Nodes []Node `json:"nodes"`
	}{nodes})
	return nil
}

// Millis is t in unix milliseconds, 0 for the zero time.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
