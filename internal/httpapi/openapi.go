package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 document of every route; TestOpenAPIMatchesRoutes
// keeps it true to routeTable.
//
//go:embed openapi.json
var openAPI []byte

// getOpenAPI serves the OpenAPI document. It needs no token.
func (h *Handler) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	writeBody(w, http.StatusOK, contentTypeJSON, openAPI)
	return nil
}
