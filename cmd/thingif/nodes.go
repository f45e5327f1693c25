package main

import (
	"context"
	"fmt"
	"text/tabwriter"
)

func init() {
	add(&node{name: "nodes", summary: "list the nodes serving the server's store, alive or dead (app admin)", long: nodesHelp, flags: nodesList})
}

const nodesHelp = `nodes lists the thingif nodes on the server's store: on PostgreSQL every node
of the cluster (docs/scale-out.md), with the host and API-broker ports it
advertises, whether its heartbeat is recent, its MQTT connections and the
things onboarding placed on it; on SQLite the one server.
`

// nodeInfo is a node as GET …/nodes answers it.
type nodeInfo struct {
	Name           string `json:"name"`
	Host           string `json:"host"`
	PortTCP        int    `json:"portTCP"`
	PortSSL        int    `json:"portSSL"`
	PortWS         int    `json:"portWS"`
	PortWSS        int    `json:"portWSS"`
	Alive          bool   `json:"alive"`
	Connections    int64  `json:"connections"`
	AssignedThings int64  `json:"assignedThings"`
	StartedAt      int64  `json:"startedAt"`
	HeartbeatAt    int64  `json:"heartbeatAt"`
}

func nodesList(fs *flagSet) action {
	c := newAppClient(fs)
	return func(ctx context.Context, s stdio, _ []string) error {
		c.stdout = s.out
		var out struct {
			Nodes []nodeInfo `json:"nodes"`
		}
		raw, err := c.call(ctx, "GET", "/thing-if/apps/"+c.app+"/nodes", "", nil, &out)
		if err != nil {
			return err
		}
		if c.printJSON(raw) {
			return nil
		}
		tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tSTATE\tHOST\tTCP/SSL/WS/WSS\tCONNECTIONS\tTHINGS\tSTARTED\tHEARTBEAT")
		for _, n := range out.Nodes {
			state := "dead"
			if n.Alive {
				state = "alive"
			}
			beat := "-"
			if n.HeartbeatAt > 0 {
				beat = ms(n.HeartbeatAt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d/%d/%d\t%d\t%d\t%s\t%s\n", n.Name, state, n.Host,
				n.PortTCP, n.PortSSL, n.PortWS, n.PortWSS, n.Connections, n.AssignedThings, ms(n.StartedAt), beat)
		}
		return tw.Flush()
	}
}
