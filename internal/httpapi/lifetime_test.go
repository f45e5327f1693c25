package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recordingRevoker records EndInstallation calls as "thing/installation".
type recordingRevoker struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingRevoker) EndInstallation(_ context.Context, thingID, installationID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, thingID+"/"+installationID)
}

func (r *recordingRevoker) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// putState uploads a state with tok as the thing and returns the answer.
func (e *env) putState(tok, thingID string) resp {
	e.t.Helper()
	return e.do("PUT", "/thing-if/apps/"+testApp+"/targets/thing:"+thingID+"/states", `{"power":true}`,
		with(bearer(tok), "Content-Type", "application/json")...)
}

// TestOnboardingKeepsFiveThingTokens: every onboarding issues a thing token
// and the thing keeps its maxThingTokens newest; the older ones are
// refused from the onboarding that pruned them on.
func TestOnboardingKeepsFiveThingTokens(t *testing.T) {
	e := newEnv(t)
	var all []onboarded
	for i := range maxThingTokens + 3 {
		all = append(all, e.onboard("v-1", "pw"))
		// The token of the onboarding just done always works.
		check(t, e.putState(all[i].AccessToken, all[i].ThingID), http.StatusNoContent, "")
	}
	for i, o := range all {
		t.Run(fmt.Sprint("token ", i), func(t *testing.T) {
			r := e.putState(o.AccessToken, o.ThingID)
			if i < len(all)-maxThingTokens {
				check(t, r, http.StatusForbidden, "WRONG_TOKEN")
			} else {
				check(t, r, http.StatusNoContent, "")
			}
		})
	}
}

// TestInstallationEndsWithItsCredentials: the Revoker hears of every
// installation whose credentials go (pruned by onboarding or by a new
// installation, or a replaced endpoint password), and of no other.
func TestInstallationEndsWithItsCredentials(t *testing.T) {
	rev := &recordingRevoker{}
	e := newEnv(t, func(c *Config) { c.Revoker = rev })
	var all []onboarded
	for range maxInstallations + 2 {
		all = append(all, e.onboard("v-1", "pw"))
	}
	thing := all[0].ThingID
	want := []string{thing + "/" + all[0].MQTTEndpoint.InstallationID, thing + "/" + all[1].MQTTEndpoint.InstallationID}
	if diff := cmp.Diff(want, rev.Calls()); diff != "" {
		t.Fatalf("ended by onboarding (-want +got):\n%s", diff)
	}

	newest := all[len(all)-1]
	r := e.do("POST", "/api/apps/"+testApp+"/installations", `{"deviceType":"MQTT"}`,
		with(bearer(newest.AccessToken), "Content-Type", "application/json")...)
	check(t, r, http.StatusCreated, "")
	var created struct{ InstallationID string }
	r.decode(t, &created)
	want = append(want, thing+"/"+all[2].MQTTEndpoint.InstallationID)
	if diff := cmp.Diff(want, rev.Calls()); diff != "" {
		t.Fatalf("ended by a new installation (-want +got):\n%s", diff)
	}

	r = e.do("GET", "/api/apps/"+testApp+"/installations/"+created.InstallationID+"/mqtt-endpoint", "", bearer(newest.AccessToken)...)
	check(t, r, http.StatusOK, "")
	want = append(want, thing+"/"+created.InstallationID)
	if diff := cmp.Diff(want, rev.Calls()); diff != "" {
		t.Fatalf("ended by a new endpoint password (-want +got):\n%s", diff)
	}
}
