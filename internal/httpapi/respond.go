package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/thingif/thingif/internal/store"
)

// Header names written in their conventional spelling. Devices search
// answers for them case-sensitively, so they are set with
// w.Header()[name] = …, never Header().Set (which canonicalizes).
const (
	headerRequestID = "X-Kii-RequestID"
	headerMQTTTTL   = "X-MQTT-TTL"
)

const contentTypeJSON = "application/json"

// writeJSON answers status with v as compact JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are marshalled; cannot happen
		writeError(w, errInternal)
		return
	}
	writeBody(w, status, contentTypeJSON, b)
}

// writeError answers e with its status, errorCode and exception content type.
func writeError(w http.ResponseWriter, e *apiError) {
	b, _ := json.Marshal(struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}{e.code, e.message})
	writeBody(w, e.status, e.contentType(), b)
}

func writeBody(w http.ResponseWriter, status int, contentType string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeNoContent answers 204 without a body.
func writeNoContent(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNoContent)
}

// headerValue returns the first value of the header name, matching the name
// case-insensitively even if the request's header map is not canonical.
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}

// validHeaderValue reports whether v can be echoed in a header line without
// breaking the answer (no control characters but tab).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// mediaType returns the request's media type in lower case, without
// parameters such as charset; "" when there is no Content-Type.
func mediaType(r *http.Request) string {
	ct := headerValue(r.Header, "Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// isJSONMedia reports whether a media type names JSON: none,
// application/json or any application/…+json.
func isJSONMedia(mt string) bool {
	return mt == "" || mt == contentTypeJSON ||
		(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// readBody reads the request body, at most MaxBodyBytes of it. Every
// handler that needs a body reads it here, so a body of zero bytes (a
// chunked "0\r\n\r\n", Content-Length: 0, nothing after the blank line of
// an HTTP-over-MQTT request) is 400 EMPTY_BODY everywhere, as Kii answers
// it; handlers of body-less requests (GET, DELETE, trigger enable and
// disable) never call it.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, errEmptyBody
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errTooLarge.with("the request body is larger than %d bytes", h.cfg.MaxBodyBytes)
	}
	if err != nil {
		return nil, errInvalidInput.with("the request body could not be read")
	}
	if len(b) == 0 {
		return nil, errEmptyBody
	}
	return b, nil
}

// readObject reads the body and decodes it, a JSON object, into v.
func (h *Handler) readObject(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeObject(b, v, errInvalidInput)
}

// checkObject refuses a body that is not a JSON object in valid UTF-8.
func checkObject(b []byte, bad *apiError) error {
	if !isObject(b) {
		return bad.with("the body must be a JSON object")
	}
	if !utf8.Valid(b) {
		return bad.with("the body is not valid UTF-8")
	}
	return nil
}

// decodeObject decodes b, which must be a JSON object, into v. Unknown
// fields are ignored. Failures are copies of bad with a precise message.
func decodeObject(b []byte, v any, bad *apiError) error {
	if err := checkObject(b, bad); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return jsonError(err, bad)
	}
	return nil
}

// jsonError turns a decoding error into a copy of bad with a precise message.
func jsonError(err error, bad *apiError) *apiError {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field != "" {
			return bad.with("field %s must be %s", typeErr.Field, kindName(typeErr.Type.Kind().String()))
		}
		return bad.with("a value has the wrong type")
	}
	return bad.with("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// kindName names a Go kind as a JSON type for error messages.
func kindName(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "uint", "uint64", "uint32", "float64", "float32":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "of another type"
}

// firstByte returns the first non-space byte of a JSON text, or 0.
func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// isObject reports whether the JSON text b is (or starts like) an object.
// Values inside already decoded JSON are valid, so the first byte decides.
func isObject(b []byte) bool { return firstByte(b) == '{' }

// isArray reports whether the JSON text b is (or starts like) an array.
func isArray(b []byte) bool { return firstByte(b) == '[' }

// isNull reports whether a decoded raw value is absent or JSON null.
func isNull(b json.RawMessage) bool {
	return len(b) == 0 || bytes.Equal(bytes.TrimSpace(b), []byte("null"))
}

// compact returns b without insignificant spaces; b must be valid JSON.
func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return json.RawMessage(b)
	}
	return json.RawMessage(buf.Bytes())
}

// listError is the answer to a listing the store refused: a paginationKey
// the store did not issue is the client's 400, anything else a 500.
func listError(what string, err error) error {
	if errors.Is(err, store.ErrInvalidPaginationKey) {
		return errInvalidInput.with("paginationKey is not valid")
	}
	return fmt.Errorf("list %s: %w", what, err)
}
