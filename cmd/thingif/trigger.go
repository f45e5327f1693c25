package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

func init() {
	add(&node{name: "trigger", summary: "triggers of a thing", subs: []*node{
		{name: "create", summary: "create a trigger that sends a command or calls the webhook", flags: triggerCreate},
		{name: "list", summary: "list the triggers of a thing", flags: triggerList},
		{name: "enable", summary: "enable a trigger", args: "TRIGGER_ID", nargs: 1, flags: triggerSet("enable")},
		{name: "disable", summary: "disable a trigger", args: "TRIGGER_ID", nargs: 1, flags: triggerSet("disable")},
		{name: "delete", summary: "delete a trigger", args: "TRIGGER_ID", nargs: 1, flags: triggerDelete},
	}})
}

func triggerCreate(fs *flagSet) action {
	c := newAppClient(fs)
	thing := fs.String("thing", "", "thing `ID` whose trigger it is")
	predicate := fs.String("predicate", "", "predicate `JSON`, e.g. '{\"eventSource\":\"STATES\",\"condition\":{\"type\":\"eq\",\"field\":\"power\",\"value\":true},\"triggersWhen\":\"CONDITION_FALSE_TO_TRUE\"}'")
	cmd := fs.String("command", "", "command `JSON` to send when it fires ({\"actions\":[…]}, optional \"target\":\"thing:ID\")")
	serverCode := fs.String("server-code", "", "server-code `JSON` for the webhook ({\"endpoint\":…,\"parameters\":{…}})")
	title := fs.String("title", "", "title")
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		stdout := s.out
		if *thing == "" || *predicate == "" || (*cmd == "") == (*serverCode == "") {
			return usagef("--thing, --predicate and one of --command or --server-code are required")
		}
		req := map[string]any{}
		for name, v := range map[string]string{"predicate": *predicate, "command": *cmd, "serverCode": *serverCode} {
			if v == "" {
				continue
			}
			if !json.Valid([]byte(v)) {
				return usagef("--%s is not valid JSON", name)
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
}

func triggerList(fs *flagSet) action {
	c := newAppClient(fs)
	thing := fs.String("thing", "", "thing `ID`")
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		stdout := s.out
		if *thing == "" {
			return usagef("--thing is required")
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
}

func triggerSet(verb string) func(fs *flagSet) action {
	return func(fs *flagSet) action {
		c := newAppClient(fs)
		thing := fs.String("thing", "", "thing `ID`")
		return func(ctx context.Context, s stdio, args []string) error {
			c.stdout = s.out
			stdout := s.out
			if *thing == "" {
				return usagef("--thing is required")
			}
			raw, err := c.call(ctx, "PUT", targetPath(c.app, *thing)+"/triggers/"+url.PathEscape(args[0])+"/"+verb, "", nil, nil)
			if err != nil {
				return err
			}
			if !c.printJSON(raw) {
				fmt.Fprintf(stdout, "trigger %s %sd\n", args[0], verb)
			}
			return nil
		}
	}
}

func triggerDelete(fs *flagSet) action {
	c := newAppClient(fs)
	thing := fs.String("thing", "", "thing `ID`")
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		stdout := s.out
		if *thing == "" {
			return usagef("--thing is required")
		}
		raw, err := c.call(ctx, "DELETE", targetPath(c.app, *thing)+"/triggers/"+url.PathEscape(args[0]), "", nil, nil)
		if err != nil {
			return err
		}
		if !c.printJSON(raw) {
			fmt.Fprintf(stdout, "trigger %s deleted\n", args[0])
		}
		return nil
	}
}
