package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// The users, groups and owners methods run unprepared statements: none of
// them is on the per-message path of a device.

const userCols = "id, app_id, username, password_hash, created_at"

func scanUser(s scanner) (store.User, error) {
	var u store.User
	var created int64
	if err := s.Scan(&u.ID, &u.AppID, &u.Username, &u.PasswordHash, &created); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = fromMillis(created)
	return u, nil
}

// CreateUser stores a new user.
func (db *DB) CreateUser(ctx context.Context, u store.User) error {
	if _, err := db.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?)`,
		u.ID, u.AppID, u.Username, u.PasswordHash, millis(u.CreatedAt)); err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, translate(err))
	}
	return nil
}

// User returns a user of the app by ID, or store.ErrNotFound.
func (db *DB) User(ctx context.Context, appID, id string) (store.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE app_id = ? AND id = ?`, appID, id))
	if err != nil {
		return store.User{}, notFound(err, fmt.Sprintf("user %q", id))
	}
	return u, nil
}

// UserByUsername returns a user of the app by username, or
// store.ErrNotFound.
func (db *DB) UserByUsername(ctx context.Context, appID, username string) (store.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE app_id = ? AND username = ?`, appID, username))
	if err != nil {
		return store.User{}, notFound(err, fmt.Sprintf("user %q", username))
	}
	return u, nil
}

// Users lists the users of an app in creation (rowid) order.
func (db *DB) Users(ctx context.Context, appID, paginationKey string, limit int) ([]store.User, string, error) {
	after, err := parseKey(paginationKey, 0)
	if err != nil {
		return nil, "", fmt.Errorf("users of %q: %w", appID, err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT rowid, `+userCols+` FROM users WHERE app_id = ? AND rowid > ?
		ORDER BY rowid LIMIT ?`, appID, after, sqlLimit(limit))
	if err != nil {
		return nil, "", fmt.Errorf("users of %q: %w", appID, err)
	}
	defer rows.Close()
	users := []store.User{}
	var seqs []int64
	for rows.Next() {
		var seq int64
		u, err := scanUser(prefixScanner{rows, &seq})
		if err != nil {
			return nil, "", fmt.Errorf("users of %q: %w", appID, err)
		}
		users = append(users, u)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("users of %q: %w", appID, err)
	}
	if limit > 0 && len(users) > limit {
		return users[:limit], strconv.FormatInt(seqs[limit-1], 10), nil
	}
	return users, "", nil
}

// DeleteUser deletes a user, its tokens, its group memberships and its
// ownership of things in one transaction. The rows that refer to the user
// go first: group_members references users.
func (db *DB) DeleteUser(ctx context.Context, appID, id string) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM tokens WHERE app_id = ?1 AND kind = 'user' AND subject = ?2`,
			`DELETE FROM group_members WHERE user_id = ?2 AND group_id IN (SELECT id FROM groups_ WHERE app_id = ?1)`,
			`DELETE FROM thing_owners WHERE owner = 'USER:' || ?2 AND thing_id IN (SELECT id FROM things WHERE app_id = ?1)`,
		} {
			if _, err := tx.ExecContext(ctx, q, appID, id); err != nil {
				return fmt.Errorf("delete user %q: %w", id, translate(err))
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE app_id = ? AND id = ?`, appID, id)
		if err != nil {
			return fmt.Errorf("delete user %q: %w", id, translate(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete user %q: %w", id, err)
		} else if n == 0 {
			// Nothing referred to a user that does not exist: the
			// deletes above changed nothing.
			return fmt.Errorf("delete user %q: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// CreateGroup stores a group and its members in one transaction.
func (db *DB) CreateGroup(ctx context.Context, g store.Group) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		if _, err = tx.ExecContext(ctx, `INSERT INTO groups_ (id, app_id, name, owner, created_at) VALUES (?, ?, ?, ?, ?)`,
			g.ID, g.AppID, g.Name, g.Owner, millis(g.CreatedAt)); err != nil {
			return fmt.Errorf("create group %q: %w", g.ID, translate(err))
		}
		for _, m := range g.Members {
			// The member must be a user of the group's app.
			var n int
			if err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE app_id = ? AND id = ?`, g.AppID, m).Scan(&n); err != nil {
				return fmt.Errorf("create group %q: %w", g.ID, err)
			}
			if n == 0 {
				err = fmt.Errorf("create group %q: member %q: %w", g.ID, m, store.ErrNotFound)
				return err
			}
			if _, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?, ?)`, g.ID, m); err != nil {
				return fmt.Errorf("create group %q: member %q: %w", g.ID, m, translate(err))
			}
		}
		return nil
	})
}

// Group returns a group of the app with its members, or store.ErrNotFound.
func (db *DB) Group(ctx context.Context, appID, id string) (store.Group, error) {
	g := store.Group{Members: []string{}}
	var created int64
	err := db.r.QueryRowContext(ctx, `SELECT id, app_id, name, owner, created_at FROM groups_ WHERE app_id = ? AND id = ?`, appID, id).
		Scan(&g.ID, &g.AppID, &g.Name, &g.Owner, &created)
	if err != nil {
		return store.Group{}, notFound(err, fmt.Sprintf("group %q", id))
	}
	g.CreatedAt = fromMillis(created)
	if g.Members, err = db.strings(ctx, `SELECT user_id FROM group_members WHERE group_id = ? ORDER BY user_id`, id); err != nil {
		return store.Group{}, fmt.Errorf("group %q: %w", id, err)
	}
	return g, nil
}

// GroupsOfUser returns the IDs of the groups the user is a member of.
func (db *DB) GroupsOfUser(ctx context.Context, appID, userID string) ([]string, error) {
	ids, err := db.strings(ctx, `SELECT g.id FROM group_members m JOIN groups_ g ON g.id = m.group_id
		WHERE g.app_id = ? AND m.user_id = ? ORDER BY g.id`, appID, userID)
	if err != nil {
		return nil, fmt.Errorf("groups of user %q: %w", userID, err)
	}
	return ids, nil
}

// strings runs a query of one TEXT column on the readers.
func (db *DB) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// AddOwner makes owner the owner of a thing of the app.
func (db *DB) AddOwner(ctx context.Context, appID, thingID, owner string, at time.Time) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		var n int
		if err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM things WHERE app_id = ? AND id = ?`, appID, thingID).Scan(&n); err != nil {
			return fmt.Errorf("add owner of %q: %w", thingID, err)
		}
		if n == 0 {
			err = fmt.Errorf("add owner of %q: %w", thingID, store.ErrNotFound)
			return err
		}
		var old string
		switch err = tx.QueryRowContext(ctx, `SELECT owner FROM thing_owners WHERE thing_id = ?`, thingID).Scan(&old); {
		case errors.Is(err, sql.ErrNoRows):
			if _, err = tx.ExecContext(ctx, `INSERT INTO thing_owners (thing_id, owner, created_at) VALUES (?, ?, ?)`,
				thingID, owner, millis(at)); err != nil {
				return fmt.Errorf("add owner of %q: %w", thingID, translate(err))
			}
		case err != nil:
			return fmt.Errorf("add owner of %q: %w", thingID, err)
		case old != owner:
			err = fmt.Errorf("add owner of %q: owned by %s: %w", thingID, old, store.ErrConflict)
			return err
		}
		return nil
	})
}

// ThingOwner returns the owner of a thing, or store.ErrNotFound.
func (db *DB) ThingOwner(ctx context.Context, thingID string) (string, error) {
	var owner string
	if err := db.r.QueryRowContext(ctx, `SELECT owner FROM thing_owners WHERE thing_id = ?`, thingID).Scan(&owner); err != nil {
		return "", notFound(err, fmt.Sprintf("owner of %q", thingID))
	}
	return owner, nil
}
