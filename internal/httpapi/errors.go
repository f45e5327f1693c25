package httpapi

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrInvalidConfig is returned by New and Config.Validate for a Config that
// cannot work; the wrapping error names the field.
var ErrInvalidConfig = errors.New("invalid httpapi config")

// apiError is an error answer: its HTTP status, its errorCode and the <Name>
// of its content type application/vnd.kii.<Name>Exception+json. Handlers
// return catalogue entries, or copies of them with a more precise message
// (see with); anything else a handler returns is a 500.
type apiError struct {
	status    int
	code      string
	exception string
	message   string
}

// The error catalogue: every error answer of the API is one of these. Codes
// follow PROTOCOL.md §9 where Kii published them; the rest are our choice and
// are listed in the package documentation.
var (
	errInvalidInput     = &apiError{http.StatusBadRequest, "INVALID_INPUT_DATA", "InvalidInputData", "the request body is not valid"}
	errEmptyBody        = &apiError{http.StatusBadRequest, "EMPTY_BODY", "EmptyBody", "the request needs a body and has none"}
	errWrongCommand     = &apiError{http.StatusBadRequest, "WRONG_COMMAND", "WrongCommand", "the command is not valid"}
	errUnsupportedGrant = &apiError{http.StatusBadRequest, "unsupported_grant_type", "UnsupportedGrantType", "only grant_type client_credentials is supported"}

	errUnauthorized  = &apiError{http.StatusUnauthorized, "UNAUTHORIZED", "Unauthorized", "an Authorization: Bearer token is required"}
	errInvalidClient = &apiError{http.StatusUnauthorized, "invalid_client", "InvalidClient", "the client credentials are not valid"}

	errWrongToken    = &apiError{http.StatusForbidden, "WRONG_TOKEN", "WrongToken", "the access token is not valid for this request"}
	errWrongPassword = &apiError{http.StatusForbidden, "WRONG_PASSWORD", "WrongPassword", "wrong thing password"}

	errNotFound                = &apiError{http.StatusNotFound, "NOT_FOUND", "NotFound", "no such API"}
	errAppNotFound             = &apiError{http.StatusNotFound, "APP_NOT_FOUND", "AppNotFound", "the app does not exist"}
	errThingNotFound           = &apiError{http.StatusNotFound, "THING_NOT_FOUND", "ThingNotFound", "the thing does not exist"}
	errTargetNotFound          = &apiError{http.StatusNotFound, "TARGET_NOT_FOUND", "TargetNotFound", "the target does not exist"}
	errInstallationNotFound    = &apiError{http.StatusNotFound, "INSTALLATION_NOT_FOUND", "InstallationNotFound", "the installation does not exist"}
	errStateNotFound           = &apiError{http.StatusNotFound, "STATE_NOT_FOUND", "StateNotFound", "no state has been uploaded"}
	errCommandNotFound         = &apiError{http.StatusNotFound, "COMMAND_NOT_FOUND", "CommandNotFound", "the command does not exist"}
	errFirmwareVersionNotFound = &apiError{http.StatusNotFound, "FIRMWARE_VERSION_NOT_FOUND", "FirmwareVersionNotFound", "the firmware version has not been set"}
	errThingTypeNotFound       = &apiError{http.StatusNotFound, "THING_TYPE_NOT_FOUND", "ThingTypeNotFound", "the thing type has not been set"}

	errMethodNotAllowed     = &apiError{http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "MethodNotAllowed", "the method is not allowed on this path"}
	errTooLarge             = &apiError{http.StatusRequestEntityTooLarge, "REQUEST_ENTITY_TOO_LARGE", "RequestEntityTooLarge", "the request body is too large"}
	errUnsupportedMediaType = &apiError{http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "UnsupportedMediaType", "the content type is not supported here"}

	errTooManyRequests        = &apiError{http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "TooManyRequests", "too many wrong credentials; retry later"}
	errTooManyPendingCommands = &apiError{http.StatusTooManyRequests, "TOO_MANY_PENDING_COMMANDS", "TooManyPendingCommands", "the thing has too many commands not yet delivered"}
	errTooManyRegistrations   = &apiError{http.StatusTooManyRequests, "TOO_MANY_REGISTRATIONS", "TooManyRegistrations", "too many new things registered; retry later"}

	errInternal = &apiError{http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "InternalServer", "internal server error"}
	errBusy     = &apiError{http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "ServiceUnavailable", "the server is busy; retry later"}
	// errStoreDown answers a request the store could not take because it
	// cannot be reached (store.ErrUnavailable): nothing was stored.
	errStoreDown = &apiError{http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "ServiceUnavailable", "the store is unavailable; retry later"}

	// The app side: users, owners, triggers, history.
	errWrongTrigger      = &apiError{http.StatusBadRequest, "WRONG_TRIGGER", "WrongTrigger", "the trigger is not valid"}
	errInvalidGrant      = &apiError{http.StatusBadRequest, "invalid_grant", "InvalidGrant", "wrong username or password"}
	errUserNotFound      = &apiError{http.StatusNotFound, "USER_NOT_FOUND", "UserNotFound", "the user does not exist"}
	errGroupNotFound     = &apiError{http.StatusNotFound, "GROUP_NOT_FOUND", "GroupNotFound", "the group does not exist"}
	errTriggerNotFound   = &apiError{http.StatusNotFound, "TRIGGER_NOT_FOUND", "TriggerNotFound", "the trigger does not exist"}
	errEndNodeNotFound   = &apiError{http.StatusNotFound, "END_NODE_NOT_FOUND", "EndNodeNotFound", "the thing is not an end node of this gateway"}
	errUserAlreadyExists = &apiError{http.StatusConflict, "USER_ALREADY_EXISTS", "UserAlreadyExists", "the user exists"}
	errOwnershipExists   = &apiError{http.StatusConflict, "THING_OWNERSHIP_ALREADY_EXISTS", "ThingOwnershipAlreadyExists", "the thing has another owner"}
	errThingExists       = &apiError{http.StatusConflict, "THING_ALREADY_EXISTS", "ThingAlreadyExists", "another thing has this vendorThingID"}
	errTooManyTriggers   = &apiError{http.StatusConflict, "TOO_MANY_TRIGGERS", "TooManyTriggers", "the thing has as many triggers as allowed"}
)

// Error implements error.
func (e *apiError) Error() string { return e.code + ": " + e.message }

// Is makes errors.Is match any copy of a catalogue entry (same errorCode).
func (e *apiError) Is(target error) bool {
	t, ok := target.(*apiError)
	return ok && t.code == e.code
}

// with returns a copy of the catalogue entry e with a more precise message.
func (e *apiError) with(format string, args ...any) *apiError {
	c := *e
	c.message = fmt.Sprintf(format, args...)
	return &c
}

// contentType is the content type of the error answer.
func (e *apiError) contentType() string {
	return "application/vnd.kii." + e.exception + "Exception+json"
}
