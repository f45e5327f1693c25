package httpapi

import "net/http"

// WriteMalformedRequest answers a request that never became an
// *http.Request, such as an MQTT payload the codec could not decode, with
// 400 INVALID_INPUT_DATA from the same catalogue as every other error.
func WriteMalformedRequest(w http.ResponseWriter, err error) {
	writeError(w, errInvalidInput.with("malformed request: %v", err))
}
