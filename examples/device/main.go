// Command device is a complete thing-if device: it onboards (once: the
// credentials are kept in thing.json), turns its simulated power on and off
// as commands say, and reports its state after each command.
//
//	go run ./examples/device -server tcp://localhost:1883 -app APP_ID:APP_KEY
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"strings"

	"github.com/thingif/thingif/thing"
)

func main() {
	server := flag.String("server", "tcp://localhost:1883", "onboarding broker URL")
	app := flag.String("app", "", "APP_ID:APP_KEY")
	flag.Parse()
	appID, appKey, _ := strings.Cut(*app, ":")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	power := make(chan bool, 1)
	c, err := thing.NewClient(ctx, thing.Config{
		Server: *server, AppID: appID, AppKey: appKey,
		VendorThingID: "example-lamp", Password: "lamp-secret",
		Store: &thing.FileStore{Path: "thing.json"},
		OnCommand: func(ctx context.Context, cmd *thing.Command) []thing.Result {
			results := make([]thing.Result, len(cmd.Actions))
			for i, a := range cmd.Actions {
				var p struct{ Power bool }
				if a.Name != "turnPower" || a.Decode(&p) != nil {
					results[i] = thing.Result{ErrorMessage: "unknown action " + a.Name}
					continue
				}
				log.Printf("power %v", p.Power)
				power <- p.Power
				results[i] = thing.Result{Succeeded: true}
			}
			return results
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.AwaitConnection(ctx); err != nil {
		log.Fatal(err)
	}
	log.Printf("connected as %s", c.ThingID())
	for {
		select {
		case on := <-power:
			if err := c.PutState(ctx, map[string]any{"power": on}); err != nil {
				log.Print(err)
			}
		case <-ctx.Done():
			c.Disconnect(context.Background())
			return
		}
	}
}
