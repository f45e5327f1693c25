package sqlite

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

const crashChildEnv = "THINGIF_SQLITE_CRASH_CHILD"

// TestCrashDurability checks the durability promise of synchronous=NORMAL:
// every write acknowledged before the process is killed with SIGKILL is in
// the database afterwards. A child process (this test binary) writes and
// reports each acknowledged command; the parent kills it mid-stream.
func TestCrashDurability(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(t, path)
		return
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashDurability$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = t.Output()
	must(t, cmd.Start())

	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked = append(acked, id)
			if len(acked) == 200 {
				break
			}
		}
	}
	must(t, cmd.Process.Kill()) // SIGKILL: no Close, no checkpoint
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged only %d commands before exiting", len(acked))
	}

	db := openTest(t, path)
	defer db.Close()
	all, _, err := db.Commands(t.Context(), "th.1", "", 0)
	must(t, err)
	have := map[string]bool{}
	for _, c := range all {
		have[c.ID] = true
	}
	for _, id := range acked {
		if !have[id] {
			t.Fatalf("acknowledged command %s lost after SIGKILL (%d stored, %d acknowledged)", id, len(all), len(acked))
		}
	}
}

// crashChild writes commands until killed, printing each acknowledged ID.
func crashChild(t *testing.T, path string) {
	db := openTest(t, path)
	seedThing(t, db)
	ctx := t.Context()
	for i := 0; ; i++ {
		id := fmt.Sprint("c", i)
		must(t, db.CreateCommand(ctx, store.Command{ID: id, AppID: "app1", ThingID: "th.1",
			State: store.CommandSending, CreatedAt: time.Now()}, 0))
		fmt.Printf("acked %s\n", id)
	}
}
