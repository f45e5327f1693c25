package httpapi

import "net/http"

// route is one path of the API and the handlers of its methods.
type route struct {
	pattern string
	methods methods
}

// Path prefixes of the app-side API.
const (
	usersPrefix  = apiPrefix + "/users"
	groupsPrefix = apiPrefix + "/groups"
	thingsPrefix = thingIFPrefix + "/things"
	trigPrefix   = targetPrefix + "/triggers/{tid}"
)

// routeTable is every route the Handler serves: the mux is built from it,
// and the OpenAPI test compares openapi.json with it both ways.
func (h *Handler) routeTable() []route {
	return []route{
		{"/openapi.json", methods{http.MethodGet: h.getOpenAPI}},

		{apiPrefix + "/oauth2/token", methods{http.MethodPost: h.postToken}},
		{apiPrefix + "/oauth2/revoke", methods{http.MethodPost: h.postRevoke}},
		{apiPrefix + "/installations", methods{http.MethodPost: h.postInstallation}},
		{apiPrefix + "/installations/{iid}/mqtt-endpoint", methods{http.MethodGet: h.getMQTTEndpoint}},
		{usersPrefix, methods{
			http.MethodGet:  h.listUsers,
			http.MethodPost: h.postUser,
		}},
		{usersPrefix + "/{user}", methods{
			http.MethodGet:    h.getUser,
			http.MethodDelete: h.deleteUser,
		}},
		{groupsPrefix, methods{http.MethodPost: h.postGroup}},
		{groupsPrefix + "/{group}", methods{http.MethodGet: h.getGroup}},
		// Kii's SDKs call the vendor-thing-id API under /api/apps (Kii
		// Cloud's thing API); it is under /thing-if/apps below too.
		{apiPrefix + "/things/{thing}/vendor-thing-id", methods{
			http.MethodGet: h.getThingField(vendorThingIDField),
			http.MethodPut: h.putVendorThingID,
		}},

		{thingIFPrefix + "/onboardings", methods{http.MethodPost: h.postOnboarding}},

		{targetPrefix + "/states", methods{
			http.MethodGet:   h.getStates,
			http.MethodPut:   h.writeStates,
			http.MethodPatch: h.writeStates,
		}},
		{targetPrefix + "/states/aliases/{alias}", methods{http.MethodGet: h.getStateAlias}},
		{targetPrefix + "/states/aliases/{alias}/query", methods{http.MethodPost: h.queryStateHistory}},
		{targetPrefix + "/states-bulk", methods{http.MethodPost: h.postStatesBulk}},
		{targetPrefix + "/commands", methods{
			http.MethodGet:  h.listCommands,
			http.MethodPost: h.postCommand,
		}},
		{targetPrefix + "/commands/{cid}", methods{http.MethodGet: h.getCommand}},
		{targetPrefix + "/commands/{cid}/action-results", methods{http.MethodPut: h.putActionResults}},
		{targetPrefix + "/triggers", methods{
			http.MethodGet:  h.listTriggers,
			http.MethodPost: h.postTrigger,
		}},
		{trigPrefix, methods{
			http.MethodGet:    h.getTrigger,
			http.MethodPatch:  h.patchTrigger,
			http.MethodDelete: h.deleteTrigger,
		}},
		{trigPrefix + "/enable", methods{http.MethodPut: h.enableTrigger(true)}},
		{trigPrefix + "/disable", methods{http.MethodPut: h.enableTrigger(false)}},
		{trigPrefix + "/results/server-code", methods{http.MethodGet: h.listTriggerResults}},

		{thingsPrefix, methods{http.MethodGet: h.listThings}},
		{thingIFPrefix + "/nodes", methods{http.MethodGet: h.listNodes}},
		{thingPrefix, methods{http.MethodGet: h.getThing}},
		{thingPrefix + "/firmware-version", methods{
			http.MethodGet: h.getThingField(firmwareVersionField),
			http.MethodPut: h.putThingField(firmwareVersionField),
		}},
		{thingPrefix + "/thing-type", methods{
			http.MethodGet: h.getThingField(thingTypeField),
			http.MethodPut: h.putThingField(thingTypeField),
		}},
		{thingPrefix + "/vendor-thing-id", methods{
			http.MethodGet: h.getThingField(vendorThingIDField),
			http.MethodPut: h.putVendorThingID,
		}},
		{thingPrefix + "/properties", methods{
			http.MethodGet: h.getThingProperties,
			http.MethodPut: h.putThingProperties,
		}},
		{thingPrefix + "/end-nodes/{endnode}/connection", methods{
			http.MethodGet: h.getEndNodeConnection,
			http.MethodPut: h.putEndNodeConnection,
		}},
	}
}
