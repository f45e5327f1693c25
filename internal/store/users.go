package store

import (
	"strings"
	"time"
)

// User is a person using an app: a possible owner of things. Users log in
// with their username and password at the token endpoint.
type User struct {
	ID       string // "u.…", assigned by the server
	AppID    string
	Username string // unique within the app
	// PasswordHash is the user password hashed with secret.HashPassword.
	PasswordHash string
	CreatedAt    time.Time
}

// Group is a set of users of an app that may own things together.
type Group struct {
	ID        string // "g.…", assigned by the server
	AppID     string
	Name      string
	Owner     string   // user ID of the group's creator
	Members   []string // user IDs, the owner included; sorted
	CreatedAt time.Time
}

// Owner prefixes: a thing's owner is "USER:{userID}" or "GROUP:{groupID}".
const (
	OwnerUser  = "USER:"
	OwnerGroup = "GROUP:"
)

// ValidOwner reports whether s is "USER:{id}" or "GROUP:{id}" with a non-empty
// id (the kind matched case-insensitively, as clients write both).
func ValidOwner(s string) bool {
	kind, id, ok := strings.Cut(s, ":")
	return ok && id != "" && (strings.EqualFold(kind+":", OwnerUser) || strings.EqualFold(kind+":", OwnerGroup))
}
