package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

func init() {
	add(&node{name: "command", summary: "commands sent to a thing", subs: []*node{
		{name: "send", summary: "send a command to a thing", flags: commandSend},
		{name: "list", summary: "list the commands of a thing, newest first", flags: commandList},
		{name: "get", summary: "show one command with its action results", args: "COMMAND_ID", nargs: 1, flags: commandGet},
	}})
}

func targetPath(app, thing string) string {
	return "/thing-if/apps/" + app + "/targets/thing:" + url.PathEscape(thing)
}

func commandSend(fs *flagSet) action {
	c := newAppClient(fs)
	thing := fs.String("thing", "", "thing `ID`")
	actions := fs.String("actions", "", "actions `JSON` array, e.g. '[{\"AC\":[{\"turnPower\":true}]}]'")
	schema := fs.String("schema", "", "schema `name` (v1 form; empty for the trait form)")
	schemaVersion := fs.Int("schema-version", 1, "schema `version` (with --schema)")
	issuer := fs.String("issuer", "", "issuer, user:{ID} or group:{ID}")
	title := fs.String("title", "", "title (at most 50 characters)")
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		stdout := s.out
		if *thing == "" || *actions == "" {
			return usagef("--thing and --actions are required")
		}
		if !json.Valid([]byte(*actions)) {
			return usagef("--actions is not valid JSON")
		}
		req := map[string]any{"actions": json.RawMessage(*actions)}
		if *schema != "" {
			req["schema"], req["schemaVersion"] = *schema, *schemaVersion
		}
		if *issuer != "" {
			req["issuer"] = *issuer
		}
		if *title != "" {
			req["title"] = *title
		}
		body, _ := json.Marshal(req)
		var out struct{ CommandID string }
		raw, err := c.call(ctx, "POST", targetPath(c.app, *thing)+"/commands", "application/json", body, &out)
		if err != nil {
			return err
		}
		if !c.printJSON(raw) {
			fmt.Fprintf(stdout, "command %s sent\n", out.CommandID)
		}
		return nil
	}
}

// commandInfo is the part of a command the CLI prints.
type commandInfo struct {
	CommandID     string          `json:"commandID"`
	CommandState  string          `json:"commandState"`
	Issuer        string          `json:"issuer"`
	Title         string          `json:"title"`
	Actions       json.RawMessage `json:"actions"`
	ActionResults json.RawMessage `json:"actionResults"`
	Created       int64           `json:"created"`
	Modified      int64           `json:"modified"`
}

func ms(t int64) string { return time.UnixMilli(t).UTC().Format(time.RFC3339) }

func commandList(fs *flagSet) action {
	c := newAppClient(fs)
	thing := fs.String("thing", "", "thing `ID`")
	limit := fs.Int("limit", 10, "at most `n` commands (the server caps it at 100)")
	key := fs.String("page", "", "pagination `key` from a previous list")
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		stdout := s.out
		if *thing == "" {
			return usagef("--thing is required")
		}
		q := url.Values{"bestEffortLimit": {fmt.Sprint(*limit)}}
		if *key != "" {
			q.Set("paginationKey", *key)
		}
		var out struct {
			Commands          []commandInfo
			NextPaginationKey string
		}
		raw, err := c.call(ctx, "GET", targetPath(c.app, *thing)+"/commands?"+q.Encode(), "", nil, &out)
		if err != nil {
			return err
		}
		if c.printJSON(raw) {
			return nil
		}
		for _, cmd := range out.Commands {
			fmt.Fprintf(stdout, "%s  %-10s  %s  %s\n", cmd.CommandID, cmd.CommandState, ms(cmd.Created), cmd.Actions)
		}
		printMore(s.err, out.NextPaginationKey)
		return nil
	}
}

func commandGet(fs *flagSet) action {
	c := newAppClient(fs)
	thing := fs.String("thing", "", "thing `ID`")
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		stdout := s.out
		if *thing == "" {
			return usagef("--thing is required")
		}
		var cmd commandInfo
		raw, err := c.call(ctx, "GET", targetPath(c.app, *thing)+"/commands/"+url.PathEscape(args[0]), "", nil, &cmd)
		if err != nil {
			return err
		}
		if c.printJSON(raw) {
			return nil
		}
		fmt.Fprintf(stdout, "command  %s\nstate    %s\nissuer   %s\ncreated  %s\nmodified %s\nactions  %s\n",
			cmd.CommandID, cmd.CommandState, cmd.Issuer, ms(cmd.Created), ms(cmd.Modified), cmd.Actions)
		if len(cmd.ActionResults) > 0 {
			fmt.Fprintf(stdout, "results  %s\n", cmd.ActionResults)
		}
		return nil
	}
}
