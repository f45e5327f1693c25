package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// singletonsNode waits until exactly one of nodes runs the singletons and
// returns it.
func singletonsNode(t *testing.T, nodes []*Server) *Server {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		var running []*Server
		for _, s := range nodes {
			if s.app.running.Load() {
				running = append(running, s)
			}
		}
		if len(running) > 1 {
			t.Fatalf("%d nodes run the singletons", len(running))
		}
		if len(running) == 1 {
			return running[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no node runs the singletons")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testThing onboards a thing through s and returns its ID, token and
// target path.
func testThing(t *testing.T, s *Server, admin, vendorID string) (thingID, token, target string) {
	t.Helper()
	var th struct{ AccessToken, ThingID string }
	if st := rest(t, s, "POST", "/thing-if/apps/"+testAppID+"/onboardings", admin, "application/vnd.kii.OnboardingWithVendorThingIDByThing+json",
		fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":"pw"}`, vendorID), &th); st != 200 {
		t.Fatalf("onboard: %d", st)
	}
	return th.ThingID, th.AccessToken, "/thing-if/apps/" + testAppID + "/targets/thing:" + th.ThingID
}

// commandCount returns how many commands the thing of target has.
func commandCount(t *testing.T, s *Server, admin, target string) int {
	t.Helper()
	var list struct{ Commands []struct{ CommandID string } }
	if st := rest(t, s, "GET", target+"/commands?bestEffortLimit=1000", admin, "", "", &list); st != 200 {
		t.Fatalf("list commands: %d", st)
	}
	return len(list.Commands)
}

// TestScheduleOnceFiresOnceTwoNodes: a SCHEDULE_ONCE trigger created on
// the node that does not run the scheduler fires once in the cluster, and
// after the node that runs it shuts down, the other takes over at once
// and fires the next one, not the first again.
func TestScheduleOnceFiresOnceTwoNodes(t *testing.T) {
	nodes := startNodes(t, 2)
	holder := singletonsNode(t, nodes)
	other := nodes[0]
	if other == holder {
		other = nodes[1]
	}
	admin := adminToken(t, other)
	_, _, target := testThing(t, other, admin, "sched-1")
	create := func(s *Server, at time.Time) {
		t.Helper()
		body := fmt.Sprintf(`{"predicate":{"eventSource":"SCHEDULE_ONCE","scheduleAt":%d},"command":{"actions":[{"ping":{}}],"schema":"S","schemaVersion":1}}`, at.UnixMilli())
		if st := rest(t, s, "POST", target+"/triggers", admin, "application/json", body, nil); st != 201 {
			t.Fatalf("create trigger: %d", st)
		}
	}
	waitCommands := func(s *Server, want int) time.Time {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for {
			n := commandCount(t, s, admin, target)
			if n > want {
				t.Fatalf("%d commands, want %d", n, want)
			}
			if n == want {
				return time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d commands after %v, want %d", n, waitFor, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	due := time.Now().Add(time.Second)
	create(other, due) // wakes other's scheduler, which does not run
	fired := waitCommands(other, 1)
	t.Logf("fired %v after it was due (the holder rescans every %v)", fired.Sub(due), pgRescan)
	if late := fired.Sub(due); late > pgRescan+3*time.Second {
		t.Fatalf("fired %v late", late)
	}

	closed := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := holder.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if singletonsNode(t, []*Server{other}) != other {
		t.Fatal("unreachable")
	}
	t.Logf("the singletons moved %v after the holder began to close", time.Since(closed))
	create(other, time.Now().Add(500*time.Millisecond))
	waitCommands(other, 2)
	time.Sleep(time.Second) // a second firing of either would show by now
	if n := commandCount(t, other, admin, target); n != 2 {
		t.Fatalf("%d commands, want 2", n)
	}
}

// TestStateTriggerTwoNodes: a false→true state trigger fires exactly once
// per transition when the uploads alternate between two nodes, one after
// the other (the trues to one, the falses to the other, whose cache of the
// trigger's run is stale: it never saw the trues) and both at once (both
// see the same transition).
func TestStateTriggerTwoNodes(t *testing.T) {
	nodes := startNodes(t, 2)
	admin := adminToken(t, nodes[0])
	_, token, target := testThing(t, nodes[0], admin, "state-1")
	if st := rest(t, nodes[1], "POST", target+"/triggers", admin, "application/json",
		`{"predicate":{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"CONDITION_FALSE_TO_TRUE"},"command":{"actions":[{"off":{}}],"schema":"S","schemaVersion":1}}`, nil); st != 201 {
		t.Fatalf("create trigger: %d", st)
	}
	put := func(s *Server, power bool) {
		t.Helper()
		if st := rest(t, s, "PUT", target+"/states", token, "application/json", fmt.Sprintf(`{"power":%v}`, power), nil); st != 204 {
			t.Errorf("put state: %d", st)
		}
	}
	// Both nodes evaluate (and cache) the trigger first.
	put(nodes[0], false)
	put(nodes[1], false)

	const rounds = 10
	for range rounds {
		put(nodes[0], true)
		put(nodes[1], false)
	}
	if got := commandCount(t, nodes[0], admin, target); got != rounds {
		t.Fatalf("%d commands after %d transitions taken by alternating nodes, want %d", got, rounds, rounds)
	}

	for i := range rounds {
		var wg sync.WaitGroup
		for _, s := range nodes {
			wg.Go(func() { put(s, true) })
		}
		wg.Wait()
		put(nodes[i%2], false)
	}
	if got := commandCount(t, nodes[1], admin, target); got != 2*rounds {
		t.Fatalf("%d commands after %d more transitions uploaded to both nodes at once, want %d", got, rounds, 2*rounds)
	}
}
