package thing_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/thingif/thingif/thing"
)

// A device that answers every action with success and uploads its state.
func ExampleNewClient() {
	ctx := context.Background()
	c, err := thing.NewClient(ctx, thing.Config{
		Server:        "tcp://localhost:1883",
		AppID:         "APP_ID",
		AppKey:        "APP_KEY",
		VendorThingID: "my-thing",
		Password:      "secret",
		Store:         &thing.FileStore{Path: "thing.json"},
		OnCommand: func(ctx context.Context, cmd *thing.Command) []thing.Result {
			results := make([]thing.Result, len(cmd.Actions))
			for i, a := range cmd.Actions {
				log.Printf("%s %s: %s", a.Alias, a.Name, a.Params)
				results[i] = thing.Result{Succeeded: true}
			}
			return results
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	if err := c.AwaitConnection(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.PutState(ctx, map[string]any{"power": true}); err != nil {
		log.Print(err)
	}
}

// Onboard once and print the API broker endpoint, as `thingif thing onboard`
// does.
func ExampleOnboard() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cr, err := thing.Onboard(ctx, thing.Config{
		Server: "ssl://localhost:8883", AppID: "APP_ID", AppKey: "APP_KEY",
		VendorThingID: "my-thing", Password: "secret", ThingType: "Lamp",
	})
	var e *thing.Error
	if errors.As(err, &e) && e.ErrorCode == "WRONG_PASSWORD" {
		log.Fatal("the thing is registered with another password")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cr.ThingID, cr.Endpoint.MQTTTopic)
}

// Any API path the thing may call, with a deadline.
func ExampleClient_Do() {
	var c *thing.Client // from NewClient
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.Do(ctx, http.MethodGet, "targets/thing:"+c.ThingID()+"/states/aliases/AirConditionerAlias", nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", res.Body)
}

// A command in the trait form, and the results the client sends for it.
func ExampleParseCommand() {
	cmd, err := thing.ParseCommand([]byte(`{"commandID":"c1","target":"thing:th.1","issuer":"user:u1",
		"actions":[{"AirConditionerAlias":[{"turnPower":true},{"setPresetTemperature":25}]}]}`))
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range cmd.Actions {
		fmt.Println(cmd.Trait(), a.Alias, a.Name, string(a.Params))
	}
	// Output:
	// true AirConditionerAlias turnPower true
	// true AirConditionerAlias setPresetTemperature 25
}
