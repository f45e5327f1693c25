package sqlite

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// benchDB opens a store on a real file with one app and one thing.
func benchDB(b *testing.B) *DB {
	b.Helper()
	db, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := b.Context()
	if err := db.PutApp(ctx, store.App{ID: "app1", KeyHash: "h"}); err != nil {
		b.Fatal(err)
	}
	if err := db.SaveOnboarding(ctx, store.Onboarding{
		Thing:        store.Thing{ID: "th.1", AppID: "app1", VendorThingID: "v", PasswordHash: "p"},
		NewThing:     true,
		Installation: store.Installation{ID: "in1", AppID: "app1", ThingID: "th.1", MQTTTopic: "t", Username: "u"},
		Token:        store.Token{Hash: "tok", AppID: "app1", Kind: store.TokenThing, Subject: "th.1"},
	}); err != nil {
		b.Fatal(err)
	}
	return db
}

func BenchmarkCreateCommand(b *testing.B) {
	db := benchDB(b)
	ctx := b.Context()
	actions := json.RawMessage(`[{"AirConditionerAlias":[{"turnPower":true},{"setTemp":25}]}]`)
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		if err := db.CreateCommand(ctx, store.Command{
			ID: fmt.Sprint("c", i), AppID: "app1", ThingID: "th.1", State: store.CommandSending,
			Issuer: "user:u1", Actions: actions, CreatedAt: now, ModifiedAt: now,
		}, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteStates(b *testing.B) {
	for _, mode := range []struct {
		name string
		mode store.StateMode
	}{{"replace", store.StateReplace}, {"merge", store.StateMerge}} {
		b.Run(mode.name, func(b *testing.B) {
			db := benchDB(b)
			ctx := b.Context()
			w := store.StateWrite{ThingID: "th.1", Mode: mode.mode, At: time.Now(), Aliases: map[string]json.RawMessage{
				"AirConditionerAlias": json.RawMessage(`{"power":true,"presetTemperature":25,"fanSpeed":3}`),
				"HumidityAlias":       json.RawMessage(`{"currentHumidity":45}`),
			}}
			for b.Loop() {
				if err := db.WriteStates(ctx, w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkToken(b *testing.B) {
	db := benchDB(b)
	ctx := b.Context()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Token(ctx, "tok"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := db.Token(ctx, "tok"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkWriteStatesParallel replaces one alias of 100 things from 64
// goroutines, as the state bench's uploads do: the writer batches them.
func BenchmarkWriteStatesParallel(b *testing.B) {
	db := benchDB(b)
	ctx := b.Context()
	const things = 100
	for i := range things {
		id := fmt.Sprint("th.p", i)
		if err := db.SaveOnboarding(ctx, store.Onboarding{
			Thing:        store.Thing{ID: id, AppID: "app1", VendorThingID: id, PasswordHash: "p"},
			NewThing:     true,
			Installation: store.Installation{ID: "in" + id, AppID: "app1", ThingID: id, MQTTTopic: "t" + id, Username: "u" + id},
			Token:        store.Token{Hash: "tok" + id, AppID: "app1", Kind: store.TokenThing, Subject: id},
		}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			w := store.StateWrite{ThingID: fmt.Sprint("th.p", n%things), Mode: store.StateReplace, At: time.Now(),
				Aliases: map[string]json.RawMessage{"_": fmt.Appendf(nil, `{"power":true,"presetTemperature":%d,"seq":%d}`, n%30, n)}}
			if err := db.WriteStates(ctx, w); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
