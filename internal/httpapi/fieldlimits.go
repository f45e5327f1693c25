package httpapi

import "unicode/utf8"

// Field size bounds. Every identifier and free-form field a caller may store
// is bounded, so that nobody can grow the database with a few huge requests
// (docs/security.md, "Field sizes"). Lengths are in bytes of UTF-8.
const (
	// maxIDLen bounds identifiers: vendorThingID, thingID, group names,
	// aliases.
	maxIDLen = 200
	// maxThingPasswordLen bounds thing passwords (argon2id hashes any
	// length; a longer one only costs hashing time). User passwords have
	// their own bounds (users.go).
	maxThingPasswordLen = 200
	// maxShortFieldLen bounds short descriptive strings: thingType,
	// firmwareVersion.
	maxShortFieldLen = 200
	// maxPropertiesBytes bounds thingProperties as sent (compact or not).
	maxPropertiesBytes = 16 << 10
)

// checkLen refuses a string field longer than max bytes, naming it.
func checkLen(field, v string, max int) error {
	if len(v) > max {
		return errInvalidInput.with("%s is longer than %d bytes", field, max)
	}
	if !utf8.ValidString(v) {
		return errInvalidInput.with("%s is not valid UTF-8", field)
	}
	return nil
}
