package httpapi

import (
	"context"
	"net/http"
)

// maxThingTokens is how many thing tokens a thing keeps: each onboarding
// issues one (Kii's embedded SDK onboards at every boot) and deletes the
// thing's oldest beyond this many. A device always uses the token of its
// latest onboarding; five leave room for a few devices or retries racing
// on one thing, as the installations do (maxInstallations).
const maxThingTokens = 5

// pruneThingTokens deletes the thing's thing tokens beyond its
// maxThingTokens newest, the one just issued among them. Failures are
// logged only: the onboarding itself succeeded, and the next one prunes.
func (h *Handler) pruneThingTokens(r *http.Request, thingID string) {
	if _, err := h.store.PruneThingTokens(r.Context(), thingID, maxThingTokens); err != nil {
		h.log.Warn("prune thing tokens", keyThing, thingID, keyErr, err)
	}
}

// endInstallation ends the connections logged in with an installation
// whose credentials were just deleted or replaced in the store.
func (h *Handler) endInstallation(ctx context.Context, thingID, installationID string) {
	if h.cfg.Revoker != nil {
		h.cfg.Revoker.EndInstallation(ctx, thingID, installationID)
	}
}
