package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// holdWriter occupies the writer with a write that blocks until the
// returned release is called, and returns once that write is running.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	running, hold := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.write(context.Background(), func(context.Context, *sql.Tx) error {
			close(running)
			<-hold
			return nil
		})
	}()
	<-running
	return func() {
		close(hold)
		if err := <-done; err != nil {
			t.Errorf("holding write: %v", err)
		}
	}
}

// waitQueued waits until n writes are queued behind a held writer.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(db.wr.ops) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", len(db.wr.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitIsolatesFailures queues writes behind a held writer so that
// they run in one transaction, some of them failing: each failing write gets
// its own error and leaves nothing behind, every other write commits.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	seedThing(t, db)
	ctx := t.Context()
	must(t, db.CreateCommand(ctx, store.Command{ID: "taken", AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0))

	const n = 40
	before := db.WriteStats()
	release := holdWriter(t, db)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := store.Command{ID: fmt.Sprint("c", i), AppID: "app1", ThingID: "th.1", State: store.CommandSending}
			switch i % 4 {
			case 1:
				c.ID = "taken" // conflicts
			case 2:
				c.ThingID = "th.nope" // no such thing
			}
			errs[i] = db.CreateCommand(ctx, c, 0)
		})
	}
	waitQueued(t, db, n)
	release()
	wg.Wait()

	after := db.WriteStats()
	// The held write and the n queued ones: two transactions.
	if got := after.Transactions - before.Transactions; got != 2 {
		t.Errorf("%d transactions for %d queued writes, want 2 (the held one and one batch)", got, n)
	}
	if got := after.Writes - before.Writes; got != n+1 {
		t.Errorf("%d writes counted, want %d", got, n+1)
	}
	for i, err := range errs {
		id := fmt.Sprint("c", i)
		_, getErr := db.Command(ctx, "th.1", id)
		switch i % 4 {
		case 1:
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("write %d: err=%v, want ErrConflict", i, err)
			}
		case 2:
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("write %d: err=%v, want ErrNotFound", i, err)
			}
			if _, err := db.Command(ctx, "th.nope", id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("failed write %d left command behind: %v", i, err)
			}
		default:
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
			if getErr != nil {
				t.Errorf("committed write %d not readable: %v", i, getErr)
			}
		}
	}
}

// TestGroupCommitPartialWriteRolledBack shows the savepoint at work: a write
// that fails after its first statement leaves none of its statements, while
// the writes around it in the same transaction stay.
func TestGroupCommitPartialWriteRolledBack(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	seedThing(t, db)
	ctx := t.Context()
	release := holdWriter(t, db)
	results := make(chan error, 3)
	for _, w := range []struct {
		id   string
		fail bool
	}{{"a", false}, {"b", true}, {"c", false}} {
		go func() {
			results <- db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO commands (id, app_id, thing_id, state, created_at, modified_at)
					VALUES (?, 'app1', 'th.1', 'SENDING', 0, 0)`, w.id); err != nil {
					return err
				}
				if w.fail {
					return errors.New("fails after its insert")
				}
				return nil
			})
		}()
		waitQueued(t, db, len(w.id)) // keep the queue order a, b, c
	}
	waitQueued(t, db, 3)
	release()
	failed := 0
	for range 3 {
		if err := <-results; err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d writes failed, want 1", failed)
	}
	for id, want := range map[string]bool{"a": true, "b": false, "c": true} {
		_, err := db.Command(ctx, "th.1", id)
		if got := err == nil; got != want {
			t.Errorf("command %s stored=%v, want %v (err %v)", id, got, want, err)
		}
	}
}

// TestGroupCommitBrokenTransaction: when the shared transaction itself
// ends (here a write ends it by hand), no write of the batch may report
// success, since none was committed.
func TestGroupCommitBrokenTransaction(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	seedThing(t, db)
	ctx := t.Context()
	release := holdWriter(t, db)
	results := make(chan error, 3)
	go func() {
		results <- db.CreateCommand(ctx, store.Command{ID: "before", AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0)
	}()
	waitQueued(t, db, 1)
	go func() {
		results <- db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "ROLLBACK")
			return err
		})
	}()
	waitQueued(t, db, 2)
	go func() {
		results <- db.CreateCommand(ctx, store.Command{ID: "after", AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0)
	}()
	waitQueued(t, db, 3)
	release()
	for range 3 {
		if err := <-results; err == nil {
			t.Error("a write of the broken transaction reported success")
		}
	}
	for _, id := range []string{"before", "after"} {
		if _, err := db.Command(ctx, "th.1", id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("command %s: err=%v, want ErrNotFound", id, err)
		}
	}
	// The writer goes on with the next write.
	must(t, db.CreateCommand(ctx, store.Command{ID: "next", AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0))
}

// TestGroupCommitCanceledWhileQueued: a write whose context ends while it
// waits in the queue is not run.
func TestGroupCommitCanceledWhileQueued(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	seedThing(t, db)
	release := holdWriter(t, db)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- db.CreateCommand(ctx, store.Command{ID: "gone", AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0)
	}()
	waitQueued(t, db, 1)
	cancel()
	release()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err=%v, want context.Canceled", err)
	}
	if _, err := db.Command(t.Context(), "th.1", "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("canceled write was stored: %v", err)
	}
}

// TestCloseFinishesQueuedWrites: Close runs the writes already queued and
// refuses later ones.
func TestCloseFinishesQueuedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db := openTest(t, path)
	seedThing(t, db)
	ctx := t.Context()
	release := holdWriter(t, db)
	done := make(chan error, 1)
	go func() {
		done <- db.CreateCommand(ctx, store.Command{ID: "queued", AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0)
	}()
	waitQueued(t, db, 1)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		select {
		case <-db.wr.quit:
		default:
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("Close did not stop the writer")
		}
		break
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("queued write: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.CreateCommand(ctx, store.Command{ID: "late", AppID: "app1", ThingID: "th.1"}, 0); !errors.Is(err, errClosed) {
		t.Fatalf("write after Close: err=%v, want errClosed", err)
	}
	db = openTest(t, path)
	defer db.Close()
	if _, err := db.Command(ctx, "th.1", "queued"); err != nil {
		t.Fatalf("queued write lost at Close: %v", err)
	}
}

// TestCheckpointsOffTheWriter: commits make the checkpointer copy the WAL
// back, on its own connection; the data stays readable through it all.
func TestCheckpointsOffTheWriter(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	seedThing(t, db)
	ctx := t.Context()
	for i := range 200 {
		must(t, db.CreateCommand(ctx, store.Command{ID: fmt.Sprint("c", i), AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0))
	}
	for deadline := time.Now().Add(10 * time.Second); db.WriteStats().Checkpoints == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint ran after 200 commits")
		}
	}
	// Nothing holds a checkpoint back: every frame can be copied.
	var busy, frames, copied int
	if err := db.cp.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	if frames != copied {
		t.Fatalf("WAL has %d frames, %d copied back", frames, copied)
	}
	pending, err := db.PendingCommands(ctx, "th.1", "", 0)
	if err != nil || len(pending) != 200 {
		t.Fatalf("PendingCommands = %d commands, %v; want 200", len(pending), err)
	}
}

// TestHousekeepingInChunks: pruning more history than one chunk deletes all
// of it, in several writes, so that the writes queued meanwhile run
// between them; expiry likewise.
func TestHousekeepingInChunks(t *testing.T) {
	ctx := t.Context()
	db := openTest(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	seedThing(t, db)
	const n = 2*housekeepingChunk + 500
	old := time.UnixMilli(1000)
	for i := range n {
		at := old.Add(time.Duration(i) * time.Millisecond)
		must(t, db.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at,
			Aliases: map[string]json.RawMessage{"_": json.RawMessage(`{"i":1}`)}}))
		must(t, db.CreateCommand(ctx, store.Command{ID: fmt.Sprint("c", i), AppID: "app1", ThingID: "th.1",
			State: store.CommandSending, CreatedAt: at, ModifiedAt: at}, 0))
	}
	cutoff := old.Add(time.Hour)
	before := db.WriteStats().Transactions
	pruned, err := db.PruneStateHistory(ctx, cutoff)
	if err != nil || pruned != n {
		t.Fatalf("PruneStateHistory = %d, %v; want %d", pruned, err, n)
	}
	if tx := db.WriteStats().Transactions - before; tx < 3 {
		t.Errorf("pruned %d rows in %d transactions; want chunks of %d", n, tx, housekeepingChunk)
	}
	before = db.WriteStats().Transactions
	expired, err := db.ExpireCommands(ctx, cutoff, cutoff)
	if err != nil || expired != n {
		t.Fatalf("ExpireCommands = %d, %v; want %d", expired, err, n)
	}
	if tx := db.WriteStats().Transactions - before; tx < 3 {
		t.Errorf("expired %d commands in %d transactions; want chunks of %d", n, tx, housekeepingChunk)
	}
	if pending, err := db.PendingCommands(ctx, "th.1", "", 0); err != nil || len(pending) != 0 {
		t.Errorf("after expiry: %d pending, %v", len(pending), err)
	}
}

// TestLazyWriteJoinsEagerWrite: a lazy write made just after an eager
// write has committed waits for the next eager write and commits in its
// transaction.
func TestLazyWriteJoinsEagerWrite(t *testing.T) {
	ctx := t.Context()
	db := openTest(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	seedThing(t, db)
	lingering := make(chan struct{}, 1)
	db.wr.lazyWait = time.Minute // only the eager write can end the wait
	db.wr.lingering = func() { lingering <- struct{}{} }
	must(t, db.CreateCommand(ctx, store.Command{ID: "c1", AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0))
	before := db.WriteStats()
	marked := make(chan error, 1)
	go func() {
		_, err := db.MarkDelivered(ctx, "th.1", "c1", time.Now())
		marked <- err
	}()
	select {
	case <-lingering:
	case <-time.After(10 * time.Second):
		t.Fatal("the lazy write did not wait for company")
	}
	must(t, db.CreateCommand(ctx, store.Command{ID: "c2", AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0))
	must(t, <-marked)
	after := db.WriteStats()
	if tx, w := after.Transactions-before.Transactions, after.Writes-before.Writes; tx != 1 || w != 2 {
		t.Fatalf("%d writes in %d transactions; want the lazy mark and the insert in one", w, tx)
	}
	if c, err := db.Command(ctx, "th.1", "c1"); err != nil || c.State != store.CommandDelivered {
		t.Fatalf("c1: %v, %v; want DELIVERED", c.State, err)
	}
}

// TestLazyWritesAloneDoNotWait: lazy writes with no eager write just
// before them commit at once, each in its own transaction: a caller making
// them one after another (DELIVERED marks of a QoS 0 backlog) is not held.
func TestLazyWritesAloneDoNotWait(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "x.db")
	db := openTest(t, path)
	seedThing(t, db)
	for i := range 3 {
		must(t, db.CreateCommand(ctx, store.Command{ID: fmt.Sprint("c", i), AppID: "app1", ThingID: "th.1", State: store.CommandSending}, 0))
	}
	db.Close()
	db = openTest(t, path) // a writer that has made no eager write yet
	defer db.Close()
	db.wr.lazyWait = time.Minute // a wait would hold the test for minutes
	db.wr.lingering = func() { t.Error("a lazy write waited with no eager write before it") }
	for i := range 3 {
		if ok, err := db.MarkDelivered(ctx, "th.1", fmt.Sprint("c", i), time.Now()); err != nil || !ok {
			t.Fatalf("MarkDelivered c%d = %v, %v", i, ok, err)
		}
	}
}
