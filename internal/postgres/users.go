package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/thingif/thingif/internal/store"
)

const userCols = "id, app_id, username, password_hash, created_at"

func scanUser(s pgx.Row, seq ...any) (store.User, error) {
	var u store.User
	var created int64
	if err := s.Scan(append(seq, &u.ID, &u.AppID, &u.Username, &u.PasswordHash, &created)...); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = fromMillis(created)
	return u, nil
}

// CreateUser stores a new user.
func (db *DB) CreateUser(ctx context.Context, u store.User) error {
	if _, err := db.pool.Exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5)`,
		u.ID, u.AppID, u.Username, u.PasswordHash, millis(u.CreatedAt)); err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, translate(err))
	}
	return nil
}

// User returns a user of the app by ID, or store.ErrNotFound.
func (db *DB) User(ctx context.Context, appID, id string) (store.User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE app_id = $1 AND id = $2`, appID, id))
	if err != nil {
		return store.User{}, notFound(err, fmt.Sprintf("user %q", id))
	}
	return u, nil
}

// UserByUsername returns a user of the app by username, or
// store.ErrNotFound.
func (db *DB) UserByUsername(ctx context.Context, appID, username string) (store.User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE app_id = $1 AND username = $2`, appID, username))
	if err != nil {
		return store.User{}, notFound(err, fmt.Sprintf("user %q", username))
	}
	return u, nil
}

// Users lists the users of an app in stored order.
func (db *DB) Users(ctx context.Context, appID, paginationKey string, limit int) ([]store.User, string, error) {
	after, err := parseKey(paginationKey, 0)
	if err != nil {
		return nil, "", fmt.Errorf("users of %q: %w", appID, err)
	}
	rows, err := db.pool.Query(ctx, `SELECT seq, `+userCols+` FROM users WHERE app_id = $1 AND seq > $2
		ORDER BY seq LIMIT $3`, appID, after, sqlLimit(limit))
	users, seqs, err := collect(rows, err, func(r pgx.Rows) (store.User, int64, error) {
		var seq int64
		u, err := scanUser(r, &seq)
		return u, seq, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("users of %q: %w", appID, err)
	}
	users, next := page(users, seqs, limit)
	return users, next, nil
}

// DeleteUser deletes a user, its tokens, its group memberships and its
// ownership of things in one transaction. The rows that refer to the user
// go first: group_members references users.
func (db *DB) DeleteUser(ctx context.Context, appID, id string) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{
			`DELETE FROM tokens WHERE app_id = $1 AND kind = 'user' AND subject = $2`,
			`DELETE FROM group_members WHERE user_id = $2 AND group_id IN (SELECT id FROM groups_ WHERE app_id = $1)`,
			`DELETE FROM thing_owners WHERE owner = 'USER:' || $2 AND thing_id IN (SELECT id FROM things WHERE app_id = $1)`,
		} {
			if _, err := tx.Exec(ctx, q, appID, id); err != nil {
				return fmt.Errorf("delete user %q: %w", id, translate(err))
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE app_id = $1 AND id = $2`, appID, id)
		return oneRow(tag, err, fmt.Sprintf("delete user %q", id))
	})
}

// CreateGroup stores a group and its members in one transaction.
func (db *DB) CreateGroup(ctx context.Context, g store.Group) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO groups_ (id, app_id, name, owner, created_at) VALUES ($1, $2, $3, $4, $5)`,
			g.ID, g.AppID, g.Name, g.Owner, millis(g.CreatedAt)); err != nil {
			return fmt.Errorf("create group %q: %w", g.ID, translate(err))
		}
		for _, m := range g.Members {
			// The member must be a user of the group's app.
			tag, err := tx.Exec(ctx, `INSERT INTO group_members (group_id, user_id)
				SELECT $1, id FROM users WHERE app_id = $2 AND id = $3 ON CONFLICT DO NOTHING`, g.ID, g.AppID, m)
			if err != nil {
				return fmt.Errorf("create group %q: member %q: %w", g.ID, m, translate(err))
			}
			if tag.RowsAffected() == 0 {
				var n int
				if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE app_id = $1 AND id = $2`, g.AppID, m).Scan(&n); err != nil {
					return fmt.Errorf("create group %q: %w", g.ID, err)
				}
				if n == 0 {
					return fmt.Errorf("create group %q: member %q: %w", g.ID, m, store.ErrNotFound)
				}
			}
		}
		return nil
	})
}

// Group returns a group of the app with its members, or store.ErrNotFound.
func (db *DB) Group(ctx context.Context, appID, id string) (store.Group, error) {
	g := store.Group{Members: []string{}}
	var created int64
	err := db.pool.QueryRow(ctx, `SELECT id, app_id, name, owner, created_at FROM groups_ WHERE app_id = $1 AND id = $2`, appID, id).
		Scan(&g.ID, &g.AppID, &g.Name, &g.Owner, &created)
	if err != nil {
		return store.Group{}, notFound(err, fmt.Sprintf("group %q", id))
	}
	g.CreatedAt = fromMillis(created)
	if g.Members, err = db.strings(ctx, `SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id`, id); err != nil {
		return store.Group{}, fmt.Errorf("group %q: %w", id, err)
	}
	return g, nil
}

// GroupsOfUser returns the IDs of the groups the user is a member of.
func (db *DB) GroupsOfUser(ctx context.Context, appID, userID string) ([]string, error) {
	ids, err := db.strings(ctx, `SELECT g.id FROM group_members m JOIN groups_ g ON g.id = m.group_id
		WHERE g.app_id = $1 AND m.user_id = $2 ORDER BY g.id`, appID, userID)
	if err != nil {
		return nil, fmt.Errorf("groups of user %q: %w", userID, err)
	}
	return ids, nil
}

// AddOwner makes owner the owner of a thing of the app. The insert that
// does nothing on a conflict, then the read, make two nodes adding owners
// at once agree: the first owner stays, the other gets store.ErrConflict.
func (db *DB) AddOwner(ctx context.Context, appID, thingID, owner string, at time.Time) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO thing_owners (thing_id, owner, created_at)
			SELECT id, $3, $4 FROM things WHERE app_id = $1 AND id = $2 ON CONFLICT (thing_id) DO NOTHING`,
			appID, thingID, owner, millis(at)); err != nil {
			return fmt.Errorf("add owner of %q: %w", thingID, translate(err))
		}
		var old string
		err := tx.QueryRow(ctx, `SELECT o.owner FROM thing_owners o JOIN things t ON t.id = o.thing_id
			WHERE t.app_id = $1 AND o.thing_id = $2`, appID, thingID).Scan(&old)
		if err != nil {
			return fmt.Errorf("add owner of %q: %w", thingID, notFound(err, "thing"))
		}
		if old != owner {
			return fmt.Errorf("add owner of %q: owned by %s: %w", thingID, old, store.ErrConflict)
		}
		return nil
	})
}

// ThingOwner returns the owner of a thing, or store.ErrNotFound.
func (db *DB) ThingOwner(ctx context.Context, thingID string) (string, error) {
	var owner string
	if err := db.pool.QueryRow(ctx, `SELECT owner FROM thing_owners WHERE thing_id = $1`, thingID).Scan(&owner); err != nil {
		return "", notFound(err, fmt.Sprintf("owner of %q", thingID))
	}
	return owner, nil
}
