package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
)

// Where push sends a thing's commands when Config.RESTNodes lists several
// nodes of one cluster (docs/scale-out.md).
const (
	// CommandNodeOther sends them to a node other than the thing's own,
	// so that every command crosses nodes (stored on one, woken by
	// LISTEN/NOTIFY on the other).
	CommandNodeOther = "other"
	// CommandNodeSame sends them to the node the thing is connected to.
	CommandNodeSame = "same"
)

// restNode is one node's REST API and the TCP port of its API broker, the
// port its things' onboarding answers name (mqttEndpoint.portTCP).
type restNode struct {
	URL  string
	Name string
	Port int
}

// commandURLs returns, for each thing, the base URL of the REST API its
// commands go to: its own node's (CommandNodeSame) or another node's
// (CommandNodeOther, spread round robin over the other nodes). A thing's
// node is the one whose API-broker TCP port its onboarding answer named.
func commandURLs(things []Thing, nodes []restNode, mode string) ([]string, error) {
	urls := make([]string, len(things))
	for i, t := range things {
		var own string
		var others []string
		for _, n := range nodes {
			if n.Port == t.Port {
				own = n.URL
			} else {
				others = append(others, n.URL)
			}
		}
		if own == "" {
			return nil, fmt.Errorf("thing %s: its API broker (port %d) is none of the nodes of RESTNodes", t.ThingID, t.Port)
		}
		switch mode {
		case CommandNodeSame:
			urls[i] = own
		case CommandNodeOther:
			if len(others) == 0 {
				return nil, fmt.Errorf("thing %s: CommandNode %s needs a second node in RESTNodes", t.ThingID, mode)
			}
			urls[i] = others[i%len(others)]
		default:
			return nil, fmt.Errorf("unknown CommandNode %q (want %s or %s)", mode, CommandNodeOther, CommandNodeSame)
		}
	}
	return urls, nil
}

var nodeInfoRE = regexp.MustCompile(`(?m)^thingif_node_info\{[^}]*\bnode="([^"]*)"`)

// restNodes learns, for each of RESTNodes, the node's name (from the
// thingif_node_info sample of its /metrics) and its API-broker TCP port
// (from its own entry of GET …/nodes).
func (r *run) restNodes(ctx context.Context, hc *http.Client, token string) ([]restNode, error) {
	nodes := make([]restNode, len(r.cfg.RESTNodes))
	seen := map[string]string{}
	for i, u := range r.cfg.RESTNodes {
		metrics, err := get(ctx, hc, u+"/metrics", "")
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", u, err)
		}
		m := nodeInfoRE.FindSubmatch(metrics)
		if m == nil {
			return nil, fmt.Errorf("node %s: no thingif_node_info in its /metrics", u)
		}
		name := string(m[1])
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("node %s: the same node (%s) as %s", u, name, prev)
		}
		seen[name] = u
		b, err := get(ctx, hc, u+"/thing-if/apps/"+r.cfg.AppID+"/nodes", token)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", u, err)
		}
		var list struct {
			Nodes []struct {
				Name    string `json:"name"`
				PortTCP int    `json:"portTCP"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("node %s: nodes: %w", u, err)
		}
		nodes[i] = restNode{URL: u, Name: name}
		for _, n := range list.Nodes {
			if n.Name == name {
				nodes[i].Port = n.PortTCP
			}
		}
		if nodes[i].Port == 0 {
			return nil, fmt.Errorf("node %s: %s is not in its own list of nodes", u, name)
		}
	}
	return nodes, nil
}

// get returns the body of a 200 answer to GET url.
func get(ctx context.Context, hc *http.Client, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return buf.Bytes(), nil
}

// placement says how many of things each node holds, for the notes.
func placement(things []Thing, nodes []restNode) string {
	count := make([]int, len(nodes))
	for _, t := range things {
		for i, n := range nodes {
			if n.Port == t.Port {
				count[i]++
			}
		}
	}
	s := "things per node:"
	for i, n := range nodes {
		s += fmt.Sprintf(" %s %d", n.Name, count[i])
	}
	return s
}
