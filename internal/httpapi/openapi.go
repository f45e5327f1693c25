package httpapi

import (
	_ "embed"
	"encoding/json"
	"net/http"

	"github.com/thingif/thingif/codec"
)

// openAPI is the OpenAPI 3 document of every route; TestOpenAPIMatchesRoutes
// keeps it true to routeTable, TestOpenAPIOperationIDs its operationIds to
// the handlers' names, and TestOpenAPILint keeps it clean under Redocly's
// linter.
//
//go:embed openapi.json
var openAPI []byte

// openAPIRest is openAPI without its servers key, as a compact JSON
// object, and openAPIRelative the whole document with the file's own
// servers (a relative "/"), for requests that name no host.
var openAPIRest, openAPIRelative = splitOpenAPI(openAPI)

// splitOpenAPI parses the embedded document once, at start: a broken
// openapi.json fails every test of the package, never a request.
func splitOpenAPI(doc []byte) (rest, relative []byte) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		panic("httpapi: openapi.json: " + err.Error())
	}
	relative, err := json.Marshal(top)
	if err != nil {
		panic("httpapi: openapi.json: " + err.Error())
	}
	delete(top, "servers")
	rest, err = json.Marshal(top)
	if err != nil {
		panic("httpapi: openapi.json: " + err.Error())
	}
	return rest, relative
}

// getOpenAPI serves the OpenAPI document. It needs no token. Its servers
// name the address the request came in on (scheme from the connection,
// host from the Host header), so that a client generated or a "try it"
// console pointed at this document calls this server, whatever name it is
// reached by; over MQTT (codec.Host) there is no such address, and the
// document keeps its relative "/".
func (h *Handler) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	if r.Host == "" || r.Host == codec.Host {
		writeBody(w, http.StatusOK, contentTypeJSON, openAPIRelative)
		return nil
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// json.Marshal quotes the host: a Host header cannot break out of the
	// string (net/http has already refused invalid ones).
	servers, err := json.Marshal([]struct {
		URL string `json:"url"`
	}{{scheme + "://" + r.Host}})
	if err != nil {
		return err
	}
	b := make([]byte, 0, len(`{"servers":,`)+len(servers)+len(openAPIRest))
	b = append(b, `{"servers":`...)
	b = append(b, servers...)
	b = append(b, ',')
	b = append(b, openAPIRest[1:]...)
	writeBody(w, http.StatusOK, contentTypeJSON, b)
	return nil
}
