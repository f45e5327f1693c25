package console_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write the console's screenshots to docs/console/")

// browser starts headless Chromium for the test, or skips (fails under
// THINGIF_INTEGRATION=1) when it is not installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if path, err = exec.LookPath("chromium-browser"); err != nil {
			if os.Getenv("THINGIF_INTEGRATION") == "1" {
				t.Fatal("chromium is not installed (THINGIF_INTEGRATION=1)")
			}
			t.Skip("chromium is not installed; apt-get install chromium")
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); acancel() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// step runs browser actions with a deadline, failing the test with what
// was being waited for.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one browser action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// text is the text of the element sel selects.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "text of "+sel, chromedp.TextContent(chromedp.CSS(sel)))
}

// poll waits until the JavaScript expression is true.
func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(waitFor))(ctx, tg)
		return err
	})
}

// screenshot writes docs/console/NAME.png when -update-screenshots is set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	path := filepath.Join("..", "..", "docs", "console", name+".png")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowser drives the console in headless Chromium: sign in as the app
// admin, watch a thing onboard in the onboarding inspector, open the thing
// (which keeps uploading its state), send a command, see it reach DONE and
// its PUBLISH and PUBACK in the thing's inspector, create, disable, enable
// and delete a trigger, with no secret anywhere on the page.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	s := startServer(t)
	url := baseURL(s) + "/console/"

	step(t, ctx, "sign-in page",
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")))
	step(t, ctx, "fill in", chromedp.SendKeys(chromedp.CSS("#app"), appID), chromedp.SendKeys(chromedp.CSS("#key"), appKey))
	screenshot(t, ctx, "signin")
	step(t, ctx, "sign in", chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#view-things")))

	// The onboarding inspector sees the thing's onboarding as it happens.
	step(t, ctx, "onboarding inspector",
		chromedp.Click(chromedp.CSS("#nav-onboarding")),
		chromedp.WaitVisible(chromedp.CSS(`#onboard-status[data-live="1"]`)))
	th := simulatedThing(t, s, "lamp-1")
	step(t, ctx, "onboarding seen", chromedp.WaitVisible(chromedp.CSS(`#inspector-onboarding .ev.REQUEST`)))
	onboarding := text(t, ctx, "#inspector-onboarding")
	for _, want := range []string{"CONNECT", "CONNACK", "accepted", "POST /thing-if/apps/" + appID + "/onboardings → 200", `"thingPassword":"[redacted]"`} {
		if !strings.Contains(onboarding, want) {
			t.Errorf("onboarding inspector lacks %q:\n%s", want, onboarding)
		}
	}
	screenshot(t, ctx, "onboarding-inspector")

	step(t, ctx, "things list",
		chromedp.Click(chromedp.CSS("#nav-things")),
		chromedp.WaitVisible(chromedp.CSS(`#things tr[data-thing="`+th.ThingID()+`"]`)))
	screenshot(t, ctx, "things")
	// The search covers every thing of the app: filler-59 is the 61st,
	// beyond the first page of 50 the list shows.
	admin := adminToken(t, s)
	for i := range 60 {
		onboardREST(t, s, admin, fmt.Sprintf("filler-%02d", i))
	}
	step(t, ctx, "search beyond the first page",
		chromedp.SendKeys(chromedp.CSS("#filter"), "FILLER-59"),
		poll(`(() => { const rows = document.querySelectorAll("#things tbody tr");
			return rows.length === 1 && rows[0].children[1].textContent === "filler-59"; })()`))
	step(t, ctx, "search cleared",
		chromedp.Evaluate[chromedp.Void](`(() => { const f = document.querySelector("#filter"); f.value = ""; f.dispatchEvent(new Event("input")); })()`),
		poll(`document.querySelectorAll("#things tbody tr").length === 50`))
	step(t, ctx, "open thing",
		chromedp.Click(chromedp.CSS(`#things tr[data-thing="`+th.ThingID()+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#inspect-status[data-live="1"]`)))
	// The state the simulated thing keeps uploading shows, and so do its
	// uploads in the inspector.
	step(t, ctx, "online", chromedp.WaitVisible(chromedp.CSS(`#thing-online[data-state="online"]`)))
	step(t, ctx, "state and uploads",
		poll(`document.querySelector("#state").textContent.includes("brightness")`),
		chromedp.WaitVisible(chromedp.CSS(`#inspector-thing .ev.REQUEST`)))

	// The history chart of the field the thing keeps uploading, raw and
	// grouped (one group: the thing is younger than 15 minutes).
	step(t, ctx, "chart",
		chromedp.Click(chromedp.CSS("#chart-draw")),
		chromedp.WaitVisible(chromedp.CSS("#chart svg polyline")))
	if got := text(t, ctx, "#chart-label"); !strings.HasPrefix(got, "LampAlias.brightness: ") || strings.HasPrefix(got, "LampAlias.brightness: 0 ") {
		t.Errorf("chart label %q, want some values of LampAlias.brightness", got)
	}
	step(t, ctx, "grouped chart",
		chromedp.Click(chromedp.CSS("#chart-grouped")),
		chromedp.Click(chromedp.CSS("#chart-draw")),
		poll(`document.querySelector("#chart-label")?.textContent.startsWith("LampAlias.brightness (mean): ")`))

	step(t, ctx, "send command", chromedp.Click(chromedp.CSS("#send")), chromedp.WaitVisible(chromedp.CSS(`#sent-state.DONE`)))
	sent := text(t, ctx, "#sent-id")
	step(t, ctx, "command in inspector",
		chromedp.WaitVisible(chromedp.CSS(`#inspector-thing .ev.PUSH`)),
		chromedp.WaitVisible(chromedp.CSS(`#inspector-thing .ev.PUBACK`)),
		poll(`document.querySelector("#inspector-thing").textContent.includes("/action-results → 204")`),
		chromedp.WaitVisible(chromedp.CSS(`#commands tr[data-command] .state.DONE`)))
	thingText := text(t, ctx, "#inspector-thing")
	if !strings.Contains(thingText, "PUSH") || !strings.Contains(thingText, "command "+sent) {
		t.Errorf("thing inspector lacks the PUBLISH of command %s:\n%s", sent, thingText)
	}

	// Triggers: create, disable, enable; delete after the screenshot.
	const trigState = `document.querySelector("#triggers tr[data-trigger] .trigger-state")?.textContent`
	step(t, ctx, "create trigger",
		chromedp.Click(chromedp.CSS("#trigger-create")),
		chromedp.WaitVisible(chromedp.CSS(`#triggers tr[data-trigger]`)),
		poll(trigState+` === "enabled"`))
	step(t, ctx, "disable trigger",
		chromedp.Click(chromedp.CSS(`#triggers tr[data-trigger] button.toggle`)),
		poll(trigState+` === "disabled"`))
	step(t, ctx, "enable trigger",
		chromedp.Click(chromedp.CSS(`#triggers tr[data-trigger] button.toggle`)),
		poll(trigState+` === "enabled"`))
	var page struct {
		Triggers []struct{ Disabled bool }
	}
	if st := call(t, s, "GET", "/thing-if/apps/"+appID+"/targets/thing:"+th.ThingID()+"/triggers", adminToken(t, s), nil, &page); st != 200 || len(page.Triggers) != 1 || page.Triggers[0].Disabled {
		t.Errorf("triggers after create, disable, enable: status %d, %+v; want one, enabled", st, page.Triggers)
	}

	time.Sleep(time.Second) // more state uploads in the shot
	step(t, ctx, "raw chart again, last minute",
		chromedp.SetValue(chromedp.CSS("#chart-range"), "60000"),
		chromedp.Click(chromedp.CSS("#chart-grouped")),
		chromedp.Click(chromedp.CSS("#chart-draw")),
		poll(`document.querySelector("#chart-label")?.textContent.startsWith("LampAlias.brightness: ")`))
	// The inspector's filter picks the command's packets out of the state
	// uploads.
	step(t, ctx, "inspector filter",
		chromedp.SendKeys(chromedp.CSS("#inspect-filter"), "PUSH PUBACK action-results"),
		poll(`[...document.querySelectorAll("#inspector-thing .ev")].every((r) => r.hidden === !(r.dataset.kind === "PUSH" || r.dataset.kind === "PUBACK" || r.textContent.includes("action-results")))`),
		poll(`[...document.querySelectorAll("#inspector-thing .ev")].filter((r) => !r.hidden).length === 3`))
	screenshot(t, ctx, "thing")
	step(t, ctx, "delete trigger",
		chromedp.Click(chromedp.CSS(`#triggers tr[data-trigger] button.delete`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#triggers tr[data-trigger]`)))
	if st := call(t, s, "GET", "/thing-if/apps/"+appID+"/targets/thing:"+th.ThingID()+"/triggers", adminToken(t, s), nil, &page); st != 200 || len(page.Triggers) != 0 {
		t.Errorf("triggers after delete: status %d, %d left", st, len(page.Triggers))
	}

	body := text(t, ctx, "body")
	for _, secret := range []string{appKey, thingPass, th.Credentials().AccessToken, th.Credentials().Endpoint.Password, th.Credentials().Endpoint.Username} {
		if secret != "" && strings.Contains(body+onboarding+thingText, secret) {
			t.Errorf("the page shows a secret %q", secret)
		}
	}
}

// TestBrowserUser: a user signs in with username and password, has no
// onboarding inspector, opens the thing the user owns and watches it live,
// and is refused another thing.
func TestBrowserUser(t *testing.T) {
	ctx := browser(t)
	s := startServer(t)
	admin := adminToken(t, s)
	userTok, userID := userToken(t, s, admin, "carol")
	mine := simulatedThing(t, s, "lamp-carol")
	other := simulatedThing(t, s, "lamp-other")
	own(t, s, userTok, userID, mine.ThingID())

	step(t, ctx, "sign in as user",
		chromedp.Navigate(baseURL(s)+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SendKeys(chromedp.CSS("#app"), appID),
		chromedp.Click(chromedp.CSS(`input[name=mode][value=user]`)),
		chromedp.SendKeys(chromedp.CSS("#username"), "carol"),
		chromedp.SendKeys(chromedp.CSS("#password"), "pw-carol"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#open-form")),
		chromedp.WaitNotVisible(chromedp.CSS("#nav-onboarding")))

	step(t, ctx, "open another's thing",
		chromedp.SendKeys(chromedp.CSS("#open-id"), other.ThingID()),
		chromedp.Click(chromedp.CSS("#open")),
		chromedp.WaitVisible(chromedp.CSS("#error")))
	if got := text(t, ctx, "#error"); !strings.Contains(got, "403") {
		t.Errorf("opening another's thing: error %q, want a 403", got)
	}

	step(t, ctx, "open own thing",
		chromedp.Navigate(baseURL(s)+"/console/#thing/"+mine.ThingID()),
		chromedp.WaitVisible(chromedp.CSS(`#inspect-status[data-live="1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#inspector-thing .ev.REQUEST`)),
		poll(`document.querySelector("#state").textContent.includes("brightness")`))
	if got, want := text(t, ctx, "#thing-info"), "USER:"+userID; !strings.Contains(strings.ToUpper(got), strings.ToUpper(want)) {
		t.Errorf("thing info %q lacks owner %q", got, want)
	}
	// The v1 (schema) form works for a user too.
	step(t, ctx, "send v1 command",
		chromedp.Click(chromedp.CSS(`input[name=form][value=v1]`)),
		chromedp.WaitVisible(chromedp.CSS("#schema")),
		chromedp.Click(chromedp.CSS("#send")),
		chromedp.WaitVisible(chromedp.CSS(`#sent-state.DONE`)))
	if got := text(t, ctx, "#commands tbody"); !strings.Contains(got, "LED v1") {
		t.Errorf("commands %q lack the v1 command", got)
	}
}
