package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

func init() {
	register(command{"state", "states: thingif state get|history --thing ID", subcommands("state", map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"get":     stateGet,
		"history": stateHistory,
	})})
}

func stateGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c appClient
	fs := newFlags("state get", &c, stdout, stderr)
	thing := fs.String("thing", "", "thing `ID`")
	alias := fs.String("alias", "", "trait `alias` (default: the whole state)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *thing == "" {
		return errors.New("state get: --thing is required")
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

func stateHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c appClient
	fs := newFlags("state history", &c, stdout, stderr)
	thing := fs.String("thing", "", "thing `ID`")
	alias := fs.String("alias", "", "trait `alias`")
	since := fs.Duration("since", 24*time.Hour, "how far back to look")
	limit := fs.Int("limit", 100, "at most `n` states")
	agg := fs.String("aggregate", "", "`TYPE:FIELD` aggregation (COUNT, MIN, MAX, MEAN, SUM) instead of the states")
	grouped := fs.Bool("grouped", false, "group by the thing's data grouping interval")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *thing == "" || *alias == "" {
		return errors.New("state history: --thing and --alias are required")
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
