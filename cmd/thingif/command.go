package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
)

func init() {
	register(command{"command", "commands: thingif command send|list|get --thing ID", subcommands("command", map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"send": commandSend,
		"list": commandList,
		"get":  commandGet,
	})})
}

func targetPath(app, thing string) string {
	return "/thing-if/apps/" + app + "/targets/thing:" + url.PathEscape(thing)
}

func commandSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c appClient
	fs := newFlags("command send", &c, stdout, stderr)
	thing := fs.String("thing", "", "thing `ID`")
	actions := fs.String("actions", "", "actions `JSON` array, e.g. '[{\"AC\":[{\"turnPower\":true}]}]'")
	schema := fs.String("schema", "", "schema `name` (v1 form; empty for the trait form)")
	schemaVersion := fs.Int("schema-version", 1, "schema `version` (with --schema)")
	issuer := fs.String("issuer", "", "issuer, user:{ID} or group:{ID}")
	title := fs.String("title", "", "title (at most 50 characters)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *thing == "" || *actions == "" {
		return errors.New("command send: --thing and --actions are required")
	}
	if !json.Valid([]byte(*actions)) {
		return errors.New("command send: --actions is not valid JSON")
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

func commandList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c appClient
	fs := newFlags("command list", &c, stdout, stderr)
	thing := fs.String("thing", "", "thing `ID`")
	limit := fs.Int("limit", 10, "at most `n` commands (the server caps it at 100)")
	key := fs.String("page", "", "pagination `key` from a previous list")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *thing == "" {
		return errors.New("command list: --thing is required")
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
	if out.NextPaginationKey != "" {
		fmt.Fprintf(stdout, "more: --page %s\n", out.NextPaginationKey)
	}
	return nil
}

func commandGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c appClient
	fs := newFlags("command get", &c, stdout, stderr)
	thing := fs.String("thing", "", "thing `ID`")
	if err := parse(fs, args, 1); err != nil {
		return fmt.Errorf("%w (usage: thingif command get --thing ID COMMAND_ID)", err)
	}
	if *thing == "" {
		return errors.New("command get: --thing is required")
	}
	var cmd commandInfo
	raw, err := c.call(ctx, "GET", targetPath(c.app, *thing)+"/commands/"+url.PathEscape(fs.Arg(0)), "", nil, &cmd)
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
