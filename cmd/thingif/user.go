package main

import (
	"context"
	"encoding/json"
	"fmt"
)

func init() {
	add(&node{name: "user", summary: "users of the app", subs: []*node{
		{name: "create", summary: "create a user", flags: userCreate},
	}})
}

func userCreate(fs *flagSet) action {
	c := newAppClient(fs)
	name := fs.String("name", "", "login `name` of the new user")
	password := fs.String("password", "", "`password` of the new user")
	fs.secretStdin(password, "password", "password")
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		stdout := s.out
		if *name == "" || *password == "" {
			return usagef("--name and --password (or --password-stdin) are required")
		}
		body, _ := json.Marshal(map[string]string{"loginName": *name, "password": *password})
		var u struct{ UserID, LoginName string }
		raw, err := c.call(ctx, "POST", "/api/apps/"+c.app+"/users", "application/json", body, &u)
		if err != nil {
			return err
		}
		if !c.printJSON(raw) {
			fmt.Fprintf(stdout, "user %s created: %s\n", u.LoginName, u.UserID)
		}
		return nil
	}
}
