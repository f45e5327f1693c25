package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"text/tabwriter"
)

func init() {
	add(&node{name: "user", summary: "users of the app", subs: []*node{
		{name: "create", summary: "create a user", flags: userCreate},
		{name: "list", summary: "list the app's users", flags: userList},
		{name: "delete", summary: "delete a user with its tokens and group memberships", args: "USER_ID", nargs: 1, flags: userDelete},
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

func userList(fs *flagSet) action {
	c := newAppClient(fs)
	limit, page := pageFlags(fs)
	return func(ctx context.Context, s stdio, _ []string) error {
		c.stdout = s.out
		var out struct {
			Users []struct {
				UserID    string `json:"userID"`
				LoginName string `json:"loginName"`
				Created   int64  `json:"created"`
			} `json:"users"`
			NextPaginationKey string `json:"nextPaginationKey"`
		}
		raw, err := c.call(ctx, "GET", "/api/apps/"+c.app+"/users?"+pageQuery(*limit, *page), "", nil, &out)
		if err != nil {
			return err
		}
		if c.printJSON(raw) {
			return nil
		}
		tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER ID\tLOGIN NAME\tCREATED")
		for _, u := range out.Users {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.UserID, u.LoginName, ms(u.Created))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		printMore(s.err, out.NextPaginationKey)
		return nil
	}
}

func userDelete(fs *flagSet) action {
	c := newAppClient(fs)
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		raw, err := c.call(ctx, "DELETE", "/api/apps/"+c.app+"/users/"+url.PathEscape(args[0]), "", nil, nil)
		if err != nil {
			return err
		}
		if !c.printJSON(raw) {
			fmt.Fprintf(s.out, "user %s deleted\n", args[0])
		}
		return nil
	}
}
