package sqlite

import (
	"fmt"
	"testing"
)

// BenchmarkThingsSearch lists a page of 50 of an app's 100,000 things (the
// console's things list), with and without a search; another app's 20,000
// things share the table. A search that matches few things walks all of
// the app's: "rare" and "none" are the worst case of a page.
func BenchmarkThingsSearch(b *testing.B) {
	db := benchDB(b)
	ctx := b.Context()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO apps (id, key_hash, created_at) VALUES ('app2', 'h', 0)`); err != nil {
		b.Fatal(err)
	}
	for _, a := range []struct {
		app string
		n   int
	}{{"app1", 100_000}, {"app2", 20_000}} {
		for i := range a.n {
			if _, err := tx.ExecContext(ctx, `INSERT INTO things (id, app_id, vendor_thing_id, password_hash, created_at, modified_at)
				VALUES (?, ?, ?, 'p', 0, 0)`, fmt.Sprintf("th.%s-%06d", a.app, i), a.app, fmt.Sprintf("Device-%06d", i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	_, lastKey, err := db.Things(ctx, "app1", "", "", 99_950)
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct {
		name, search, key string
		want              int
	}{
		{"first page", "", "", 50},
		{"last page", "", lastKey, 50},
		{"common", "device-0", "", 50},
		{"rare", "device-099999", "", 1},
		{"none", "no such thing", "", 0},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				things, _, err := db.Things(ctx, "app1", bb.search, bb.key, 50)
				if err != nil {
					b.Fatal(err)
				}
				if len(things) != bb.want {
					b.Fatalf("%d things, want %d", len(things), bb.want)
				}
			}
		})
	}
}
