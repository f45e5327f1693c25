// Package httpapi is the thing-if HTTP API: one http.Handler that serves the
// REST API and every request that arrived over MQTT. The MQTT transports
// decode a PUBLISH into an *http.Request (package codec), say who is calling
// with WithCaller, serve it with the same Handler and encode the answer, so
// both roads behave identically.
//
// Answers are compact JSON; errors are {"errorCode","message"} with content
// type application/vnd.kii.<Name>Exception+json (the catalogue is in
// errors.go). X-Kii-RequestID is echoed in exactly that spelling.
//
// Choices where PROTOCOL.md says "inferred" (to be recorded in
// docs/protocol-decisions.md):
//   - A wrong thing password is 403 WRONG_PASSWORD; nothing is stored.
//   - On the API broker an absent Authorization header means the
//     connection's thing, which its CONNECT authenticated; a present one must
//     be a valid token of that same thing (else 403 WRONG_TOKEN).
//   - A thing acting on another thing is 403 WRONG_TOKEN whether or not the
//     other thing exists; an app admin gets 404 for a missing thing.
//   - Each onboarding issues a new token and a new installation (endpoint);
//     earlier tokens keep working and a thing keeps its 5 newest
//     installations.
//   - POST …/states-bulk takes Kii's
//     {"states":[{"generatedAt":ms,"payload":{alias:{…}}}]} (timestamp and
//     state accepted as aliases; generatedAt optional, the request time when
//     absent); items are written oldest first, each replacing the state as a
//     v2 PUT would (StateBulkUploadRequest) or merged into it as a v2 PATCH
//     would (StatePatchBulkUploadRequest), so the newest remains.
//   - GET …/commands returns 10 commands unless bestEffortLimit says
//     otherwise, at most 100.
//   - The token endpoint answers 400 unsupported_grant_type for grants other
//     than client_credentials, 401 invalid_client for a wrong client_id or
//     (unless the app allows anonymous tokens) a wrong client_secret.
//   - Unknown paths are 404 NOT_FOUND, a wrong method 405
//     METHOD_NOT_ALLOWED, a body over Config.MaxBodyBytes 413
//     REQUEST_ENTITY_TOO_LARGE, a wrong content type 415
//     UNSUPPORTED_MEDIA_TYPE; all as JSON errors.
//   - PUT …/things/{thingID}/vendor-thing-id to a vendorThingID another
//     thing of the app has is 409 THING_ALREADY_EXISTS.
//   - A request that needs a body and has none (zero bytes) is 400
//     EMPTY_BODY, as Kii answered it (PROTOCOL.md §8).
package httpapi
