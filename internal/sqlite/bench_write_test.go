package sqlite

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// BenchmarkSaveOnboarding measures the write of one new thing's onboarding
// (thing, installation, token) in one transaction.
func BenchmarkSaveOnboarding(b *testing.B) {
	db := benchDB(b)
	ctx := b.Context()
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprint("th.b", i)
		if err := db.SaveOnboarding(ctx, store.Onboarding{
			Thing:        store.Thing{ID: id, AppID: "app1", VendorThingID: "vb" + id, PasswordHash: "p", CreatedAt: now},
			NewThing:     true,
			Installation: store.Installation{ID: "in" + id, AppID: "app1", ThingID: id, MQTTTopic: "t" + id, Username: "u" + id, CreatedAt: now},
			Token:        store.Token{Hash: "tok" + id, AppID: "app1", Kind: store.TokenThing, Subject: id},
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommandLifecycle measures the three writes of one command:
// created, delivered, action results (DONE), one after another from one
// caller. The DELIVERED mark is a lazy write that follows an eager one with
// no other write to come, so it waits its whole lazyWait: the worst case of
// a lone caller; BenchmarkCommandLifecycleParallel is the loaded case.
func BenchmarkCommandLifecycle(b *testing.B) {
	db := benchDB(b)
	ctx := b.Context()
	actions := json.RawMessage(`[{"turnPower":{"power":true}}]`)
	results := json.RawMessage(`[{"turnPower":{"succeeded":true}}]`)
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprint("c", i)
		if err := db.CreateCommand(ctx, store.Command{ID: id, AppID: "app1", ThingID: "th.1", State: store.CommandSending,
			Issuer: "user:u1", Actions: actions, CreatedAt: now, ModifiedAt: now}, 0); err != nil {
			b.Fatal(err)
		}
		if ok, err := db.MarkDelivered(ctx, "th.1", id, now); err != nil || !ok {
			b.Fatalf("MarkDelivered = %v, %v", ok, err)
		}
		if _, err := db.SetActionResults(ctx, "th.1", id, results, store.CommandDone, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnabledTriggers measures the lookup every state upload makes for
// the thing's state triggers (here: none, the common case).
func BenchmarkEnabledTriggers(b *testing.B) {
	db := benchDB(b)
	ctx := b.Context()
	for b.Loop() {
		if _, err := db.EnabledTriggers(ctx, "th.1", store.EventStates); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommandLifecycleParallel runs the three writes of a command from
// 64 goroutines at once, as a loaded server does: the writer batches them
// (group commit), so the cost per command falls below the serial one.
func BenchmarkCommandLifecycleParallel(b *testing.B) {
	db := benchDB(b)
	ctx := b.Context()
	actions := json.RawMessage(`[{"turnPower":{"power":true}}]`)
	results := json.RawMessage(`[{"turnPower":{"succeeded":true}}]`)
	now := time.Now()
	var next atomic.Int64
	before := db.WriteStats()
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint("c", next.Add(1))
			if err := db.CreateCommand(ctx, store.Command{ID: id, AppID: "app1", ThingID: "th.1", State: store.CommandSending,
				Issuer: "user:u1", Actions: actions, CreatedAt: now, ModifiedAt: now}, 0); err != nil {
				b.Error(err)
				return
			}
			if ok, err := db.MarkDelivered(ctx, "th.1", id, now); err != nil || !ok {
				b.Errorf("MarkDelivered = %v, %v", ok, err)
				return
			}
			if _, err := db.SetActionResults(ctx, "th.1", id, results, store.CommandDone, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
	after := db.WriteStats()
	if tx := after.Transactions - before.Transactions; tx > 0 {
		b.ReportMetric(float64(after.Writes-before.Writes)/float64(tx), "writes/tx")
	}
}
