package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
)

func init() {
	register(command{"trigger", "triggers: thingif trigger create|list|enable|disable|delete --thing ID", subcommands("trigger", map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"create":  triggerCreate,
		"list":    triggerList,
		"enable":  triggerSet("enable"),
		"disable": triggerSet("disable"),
		"delete":  triggerDelete,
	})})
}

func triggerCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c appClient
	fs := newFlags("trigger create", &c, stdout, stderr)
	thing := fs.String("thing", "", "thing `ID` whose trigger it is")
	predicate := fs.String("predicate", "", "predicate `JSON`, e.g. '{\"eventSource\":\"STATES\",\"condition\":{\"type\":\"eq\",\"field\":\"power\",\"value\":true},\"triggersWhen\":\"CONDITION_FALSE_TO_TRUE\"}'")
	cmd := fs.String("command", "", "command `JSON` to send when it fires ({\"actions\":[…]}, optional \"target\":\"thing:ID\")")
	serverCode := fs.String("server-code", "", "server-code `JSON` for the webhook ({\"endpoint\":…,\"parameters\":{…}})")
	title := fs.String("title", "", "title")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *thing == "" || *predicate == "" || (*cmd == "") == (*serverCode == "") {
		return errors.New("trigger create: --thing, --predicate and one of --command or --server-code are required")
	}
	req := map[string]any{}
	for name, v := range map[string]string{"predicate": *predicate, "command": *cmd, "serverCode": *serverCode} {
		if v == "" {
			continue
		}
		if !json.Valid([]byte(v)) {
			return fmt.Errorf("trigger create: --%s is not valid JSON", name)
		}
		req[name] = json.RawMessage(v)
	}
	if *title != "" {
		req["title"] = *title
	}
	body, _ := json.Marshal(req)
	var out struct{ TriggerID string }
	raw, err := c.call(ctx, "POST", targetPath(c.app, *thing)+"/triggers", "application/json", body, &out)
	if err != nil {
		return err
	}
	if !c.printJSON(raw) {
		fmt.Fprintf(stdout, "trigger %s created\n", out.TriggerID)
	}
	return nil
}

func triggerList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c appClient
	fs := newFlags("trigger list", &c, stdout, stderr)
	thing := fs.String("thing", "", "thing `ID`")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *thing == "" {
		return errors.New("trigger list: --thing is required")
	}
	var out struct {
		Triggers []struct {
			TriggerID, TriggersWhat, Title string
			Disabled                       bool
			Predicate                      json.RawMessage
		}
	}
	raw, err := c.call(ctx, "GET", targetPath(c.app, *thing)+"/triggers?bestEffortLimit=100", "", nil, &out)
	if err != nil {
		return err
	}
	if c.printJSON(raw) {
		return nil
	}
	for _, tr := range out.Triggers {
		state := "enabled"
		if tr.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(stdout, "%s  %-8s  %-11s  %s  %s\n", tr.TriggerID, state, tr.TriggersWhat, tr.Predicate, tr.Title)
	}
	return nil
}

func triggerSet(verb string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		var c appClient
		fs := newFlags("trigger "+verb, &c, stdout, stderr)
		thing := fs.String("thing", "", "thing `ID`")
		if err := parse(fs, args, 1); err != nil {
			return fmt.Errorf("%w (usage: thingif trigger %s --thing ID TRIGGER_ID)", err, verb)
		}
		if *thing == "" {
			return fmt.Errorf("trigger %s: --thing is required", verb)
		}
		raw, err := c.call(ctx, "PUT", targetPath(c.app, *thing)+"/triggers/"+url.PathEscape(fs.Arg(0))+"/"+verb, "", nil, nil)
		if err != nil {
			return err
		}
		if !c.printJSON(raw) {
			fmt.Fprintf(stdout, "trigger %s %sd\n", fs.Arg(0), verb)
		}
		return nil
	}
}

func triggerDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c appClient
	fs := newFlags("trigger delete", &c, stdout, stderr)
	thing := fs.String("thing", "", "thing `ID`")
	if err := parse(fs, args, 1); err != nil {
		return fmt.Errorf("%w (usage: thingif trigger delete --thing ID TRIGGER_ID)", err)
	}
	if *thing == "" {
		return errors.New("trigger delete: --thing is required")
	}
	raw, err := c.call(ctx, "DELETE", targetPath(c.app, *thing)+"/triggers/"+url.PathEscape(fs.Arg(0)), "", nil, nil)
	if err != nil {
		return err
	}
	if !c.printJSON(raw) {
		fmt.Fprintf(stdout, "trigger %s deleted\n", fs.Arg(0))
	}
	return nil
}
