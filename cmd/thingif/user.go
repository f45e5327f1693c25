package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

func init() {
	register(command{"user", "app users: thingif user create --name NAME --password PW", subcommands("user", map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"create": userCreate,
	})})
}

func sortStrings(s []string) { sort.Strings(s) }

func userCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c appClient
	fs := newFlags("user create", &c, stdout, stderr)
	name := fs.String("name", "", "login `name` of the new user")
	password := fs.String("password", "", "`password` of the new user")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *name == "" || *password == "" {
		return errors.New("user create: --name and --password are required")
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
