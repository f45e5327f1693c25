package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
)

func init() {
	add(&node{name: "app", summary: "apps of a data directory (while no server runs on it)", long: appHelp, subs: []*node{
		{name: "create", summary: "create an app and print its ID and key", long: appHelp, flags: appCreate},
		{name: "list", summary: "list the apps of a data directory", long: appHelp, flags: appList},
	}})
}

// appHelp says why the app commands work on the data directory.
const appHelp = `The REST API knows no operator above the apps, so apps are managed on the
data directory itself, while no server runs on it: the directory's lock
refuses either while the other holds it. (serve --app ID:KEY creates an app
at start-up too.)
`

func dataFlag(fs *flagSet) *string {
	dir := new(string)
	fs.envString(dir, "data", "THINGIF_DATA", server.DefaultConfig().DataDir, "data `directory`")
	return dir
}

func appCreate(fs *flagSet) action {
	dir := dataFlag(fs)
	id := fs.String("id", "", "app `ID` (default: generated)")
	var key string
	fs.secretFile(&key, "key", "app key (default: generated and printed once)")
	asJSON := fs.Bool("json", false, "print {\"appID\",\"appKey\"} as JSON")
	return func(ctx context.Context, s stdio, _ []string) error {
		a := server.AppCredential{ID: *id, Key: key}
		if a.ID == "" {
			a.ID = secret.NewID(4)
		}
		generated := a.Key == ""
		if generated {
			a.Key = secret.NewID(16)
		}
		if _, err := server.ParseAppCredential(a.ID + ":" + a.Key); err != nil {
			return usageErr(err)
		}
		o, err := server.OpenOffline(ctx, *dir)
		if err != nil {
			return err
		}
		err = o.CreateApp(ctx, a, secret.DefaultCost)
		if cerr := o.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if errors.Is(err, server.ErrAppExists) {
				return fmt.Errorf("app %s exists in %s", a.ID, *dir)
			}
			return err
		}
		shownKey := a.Key
		if !generated {
			shownKey = "" // the caller has it; do not echo a secret
		}
		if *asJSON {
			b, _ := json.Marshal(struct {
				AppID  string `json:"appID"`
				AppKey string `json:"appKey,omitempty"`
			}{a.ID, shownKey})
			fmt.Fprintf(s.out, "%s\n", b)
			return nil
		}
		fmt.Fprintf(s.out, "APP_ID=%s\n", a.ID)
		if shownKey != "" {
			fmt.Fprintf(s.out, "APP_KEY=%s\n", shownKey)
		}
		return nil
	}
}

func appList(fs *flagSet) action {
	dir := dataFlag(fs)
	asJSON := fs.Bool("json", false, "print the apps as JSON")
	return func(ctx context.Context, s stdio, _ []string) error {
		o, err := server.OpenOffline(ctx, *dir)
		if err != nil {
			return err
		}
		apps, err := o.Apps(ctx)
		if cerr := o.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if *asJSON {
			type appJSON struct {
				AppID   string `json:"appID"`
				Created int64  `json:"created"`
			}
			out := make([]appJSON, 0, len(apps))
			for _, a := range apps {
				out = append(out, appJSON{a.ID, a.CreatedAt.UnixMilli()})
			}
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Fprintf(s.out, "%s\n", b)
			return nil
		}
		tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "APP ID\tCREATED")
		for _, a := range apps {
			fmt.Fprintf(tw, "%s\t%s\n", a.ID, a.CreatedAt.UTC().Format("2006-01-02T15:04:05Z07:00"))
		}
		return tw.Flush()
	}
}
