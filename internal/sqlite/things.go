package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/thingif/thingif/internal/store"
)

func scanThing(s scanner) (store.Thing, error) {
	var t store.Thing
	var created, modified int64
	if err := s.Scan(&t.ID, &t.AppID, &t.VendorThingID, &t.PasswordHash, &t.ThingType, &t.FirmwareVersion,
		&t.LayoutPosition, jsonDest(&t.Properties), &t.DataGroupingInterval, &created, &modified); err != nil {
		return store.Thing{}, err
	}
	t.CreatedAt = fromMillis(created)
	t.ModifiedAt = fromMillis(modified)
	return t, nil
}

// Thing returns a thing of the app by its thing ID, or store.ErrNotFound.
func (db *DB) Thing(ctx context.Context, appID, thingID string) (store.Thing, error) {
	t, err := scanThing(db.rs.thing.QueryRowContext(ctx, appID, thingID))
	if err != nil {
		return store.Thing{}, notFound(err, fmt.Sprintf("thing %q", thingID))
	}
	return t, nil
}

// ThingByVendorID returns a thing of the app by its vendorThingID, or
// store.ErrNotFound.
func (db *DB) ThingByVendorID(ctx context.Context, appID, vendorThingID string) (store.Thing, error) {
	t, err := scanThing(db.rs.thingByVendorID.QueryRowContext(ctx, appID, vendorThingID))
	if err != nil {
		return store.Thing{}, notFound(err, fmt.Sprintf("thing with vendorThingID %q", vendorThingID))
	}
	return t, nil
}

// UpdateThing replaces the mutable fields of an existing thing of t.AppID,
// or returns store.ErrNotFound.
func (db *DB) UpdateThing(ctx context.Context, t store.Thing) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return updateThing(ctx, tx.StmtContext(ctx, db.ws.updateThing), t)
	})
}

func updateThing(ctx context.Context, stmt *sql.Stmt, t store.Thing) error {
	res, err := stmt.ExecContext(ctx, t.ThingType, t.FirmwareVersion, t.LayoutPosition, jsonArg(t.Properties),
		t.DataGroupingInterval, millis(t.ModifiedAt), t.AppID, t.ID)
	if err != nil {
		return fmt.Errorf("update thing %q: %w", t.ID, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update thing %q: %w", t.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("update thing %q: %w", t.ID, store.ErrNotFound)
	}
	return nil
}

// UpdateVendorThingID changes a thing's vendorThingID and, when
// u.PasswordHash is not empty, its password hash. The UNIQUE (app_id,
// vendor_thing_id) constraint makes a taken vendorThingID store.ErrConflict.
func (db *DB) UpdateVendorThingID(ctx context.Context, u store.VendorThingIDUpdate) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, db.ws.updateVendorID).ExecContext(ctx, u.VendorThingID,
			u.PasswordHash, u.PasswordHash, millis(u.ModifiedAt), u.AppID, u.ThingID)
		if err != nil {
			return fmt.Errorf("update vendorThingID of %q: %w", u.ThingID, translate(err))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("update vendorThingID of %q: %w", u.ThingID, err)
		}
		if n == 0 {
			return fmt.Errorf("update vendorThingID of %q: %w", u.ThingID, store.ErrNotFound)
		}
		return nil
	})
}

func insertThing(ctx context.Context, stmt *sql.Stmt, t store.Thing) error {
	if _, err := stmt.ExecContext(ctx, t.ID, t.AppID, t.VendorThingID, t.PasswordHash, t.ThingType,
		t.FirmwareVersion, t.LayoutPosition, jsonArg(t.Properties), t.DataGroupingInterval,
		millis(t.CreatedAt), millis(t.ModifiedAt)); err != nil {
		return fmt.Errorf("insert thing %q: %w", t.ID, translate(err))
	}
	return nil
}

// SaveOnboarding stores one onboarding in one transaction: the thing
// (inserted or updated), the installation (upserted) and the token
// (inserted). On any error nothing is stored.
func (db *DB) SaveOnboarding(ctx context.Context, o store.Onboarding) error {
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if o.NewThing {
			err = insertThing(ctx, tx.StmtContext(ctx, db.ws.insertThing), o.Thing)
		} else {
			err = updateThing(ctx, tx.StmtContext(ctx, db.ws.updateThing), o.Thing)
		}
		if err != nil {
			return err
		}
		if !o.NewThing && o.PasswordHash != "" {
			if _, err := tx.StmtContext(ctx, db.ws.rehashThing).ExecContext(ctx, o.PasswordHash, o.Thing.AppID, o.Thing.ID); err != nil {
				return fmt.Errorf("rehash thing %q: %w", o.Thing.ID, translate(err))
			}
		}
		if err := putInstallation(ctx, tx.StmtContext(ctx, db.ws.putInstallation), o.Installation); err != nil {
			return err
		}
		return putToken(ctx, tx.StmtContext(ctx, db.ws.putToken), o.Token)
	})
	if err != nil {
		return fmt.Errorf("save onboarding: %w", err)
	}
	return nil
}

// Things lists the things of an app in creation (rowid) order. A search
// walks the app's things in that order until the page is full (LIKE is
// case-insensitive for ASCII in SQLite), so a page costs at most one pass
// over the app's things: BenchmarkThingsSearch.
func (db *DB) Things(ctx context.Context, appID, search, paginationKey string, limit int) ([]store.Thing, string, error) {
	after, err := parseKey(paginationKey, 0)
	if err != nil {
		return nil, "", fmt.Errorf("things of %q: %w", appID, err)
	}
	pattern := "%" + likeEscaper.Replace(search) + "%"
	rows, err := db.r.QueryContext(ctx, `SELECT rowid, `+thingCols+` FROM things WHERE app_id = ? AND rowid > ?
		AND (? = '' OR id LIKE ? ESCAPE '\' OR vendor_thing_id LIKE ? ESCAPE '\')
		ORDER BY rowid LIMIT ?`, appID, after, search, pattern, pattern, sqlLimit(limit))
	if err != nil {
		return nil, "", fmt.Errorf("things of %q: %w", appID, err)
	}
	defer rows.Close()
	things := []store.Thing{}
	var seqs []int64
	for rows.Next() {
		var seq int64
		t, err := scanThing(prefixScanner{rows, &seq})
		if err != nil {
			return nil, "", fmt.Errorf("things of %q: %w", appID, err)
		}
		things = append(things, t)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("things of %q: %w", appID, err)
	}
	if limit > 0 && len(things) > limit {
		return things[:limit], strconv.FormatInt(seqs[limit-1], 10), nil
	}
	return things, "", nil
}

// likeEscaper makes a search string match itself in a LIKE pattern.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// PutEndNode stores (or replaces) the gateway link of an end node.
func (db *DB) PutEndNode(ctx context.Context, e store.EndNode) error {
	if _, err := db.exec(ctx, `INSERT INTO end_nodes (thing_id, gateway_id, online, modified_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (thing_id) DO UPDATE SET gateway_id = excluded.gateway_id, online = excluded.online,
		modified_at = excluded.modified_at`, e.ThingID, e.GatewayID, e.Online, millis(e.ModifiedAt)); err != nil {
		return fmt.Errorf("put end node %q: %w", e.ThingID, translate(err))
	}
	return nil
}

// EndNode returns the gateway link of an end node, or store.ErrNotFound.
func (db *DB) EndNode(ctx context.Context, thingID string) (store.EndNode, error) {
	var e store.EndNode
	var modified int64
	if err := db.r.QueryRowContext(ctx, `SELECT thing_id, gateway_id, online, modified_at FROM end_nodes WHERE thing_id = ?`, thingID).
		Scan(&e.ThingID, &e.GatewayID, &e.Online, &modified); err != nil {
		return store.EndNode{}, notFound(err, fmt.Sprintf("end node %q", thingID))
	}
	e.ModifiedAt = fromMillis(modified)
	return e, nil
}
