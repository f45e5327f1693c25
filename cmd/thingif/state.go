package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

func init() {
	add(&node{name: "state", summary: "states of a thing", subs: []*node{
		{name: "get", summary: "print the latest state of a thing (JSON)", flags: stateGet},
		{name: "history", summary: "query the state history of a trait alias, or aggregate it", flags: stateHistory},
	}})
}

func stateGet(fs *flagSet) action {
	c := newAppClient(fs)
	thing := fs.String("thing", "", "thing `ID`")
	alias := fs.String("alias", "", "trait `alias` (default: the whole state)")
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		if *thing == "" {
			return usagef("--thing is required")
		}
		p := targetPath(c.app, *thing) + "/states"
		if *alias != "" {
			p += "/aliases/" + url.PathEscape(*alias)
		}
		raw, err := c.call(ctx, "GET", p, "", nil, nil)
		if err != nil {
			return err
		}
		c.json = true // a state is JSON either way
		c.printJSON(raw)
		return nil
	}
}

func stateHistory(fs *flagSet) action {
	c := newAppClient(fs)
	thing := fs.String("thing", "", "thing `ID`")
	alias := fs.String("alias", "", "trait `alias`")
	since := fs.Duration("since", 24*time.Hour, "how far back to look")
	limit := fs.Int("limit", 100, "at most `n` states")
	agg := fs.String("aggregate", "", "`TYPE:FIELD` aggregation (COUNT, MIN, MAX, MEAN, SUM) instead of the states")
	grouped := fs.Bool("grouped", false, "group by the thing's data grouping interval")
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		stdout := s.out
		if *thing == "" || *alias == "" {
			return usagef("--thing and --alias are required")
		}
		now := time.Now()
		query := map[string]any{
			"clause":  map[string]any{"type": "withinTimeRange", "lowerLimit": now.Add(-*since).UnixMilli(), "upperLimit": now.UnixMilli()},
			"grouped": *grouped,
		}
		if *agg != "" {
			typ, field, _ := strings.Cut(*agg, ":")
			query["aggregations"] = []map[string]string{{"type": typ, "field": field}}
		}
		body, _ := json.Marshal(map[string]any{"query": query, "bestEffortLimit": *limit})
		var out struct {
			Results      []map[string]any
			Aggregations []struct {
				Type, Field string
				Value       *float64
			}
		}
		raw, err := c.call(ctx, "POST", targetPath(c.app, *thing)+"/states/aliases/"+url.PathEscape(*alias)+"/query",
			"application/vnd.kii.TraitStateQueryRequest+json", body, &out)
		if err != nil {
			return err
		}
		if c.printJSON(raw) || *grouped {
			if *grouped && !c.json {
				c.json = true
				c.printJSON(raw)
			}
			return nil
		}
		for _, a := range out.Aggregations {
			v := "null"
			if a.Value != nil {
				v = fmt.Sprint(*a.Value)
			}
			fmt.Fprintf(stdout, "%s(%s) = %s\n", a.Type, a.Field, v)
		}
		for _, r := range out.Results {
			at, _ := r["_created"].(float64)
			delete(r, "_created")
			b, _ := json.Marshal(r)
			fmt.Fprintf(stdout, "%s  %s\n", ms(int64(at)), b)
		}
		return nil
	}
}
