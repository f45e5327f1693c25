package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/thingif/thingif/internal/store"
)

const thingCols = "id, app_id, vendor_thing_id, password_hash, thing_type, firmware_version, layout_position, properties, data_grouping_interval, created_at, modified_at"

func scanThing(s pgx.Row, seq ...any) (store.Thing, error) {
	var t store.Thing
	var created, modified int64
	dest := append(seq, &t.ID, &t.AppID, &t.VendorThingID, &t.PasswordHash, &t.ThingType, &t.FirmwareVersion,
		&t.LayoutPosition, jsonDest{(*[]byte)(&t.Properties)}, &t.DataGroupingInterval, &created, &modified)
	if err := s.Scan(dest...); err != nil {
		return store.Thing{}, err
	}
	t.CreatedAt = fromMillis(created)
	t.ModifiedAt = fromMillis(modified)
	return t, nil
}

// Thing returns a thing of the app by its thing ID, or store.ErrNotFound.
func (db *DB) Thing(ctx context.Context, appID, thingID string) (store.Thing, error) {
	t, err := scanThing(db.pool.QueryRow(ctx, `SELECT `+thingCols+` FROM things WHERE app_id = $1 AND id = $2`, appID, thingID))
	if err != nil {
		return store.Thing{}, notFound(err, fmt.Sprintf("thing %q", thingID))
	}
	return t, nil
}

// ThingByVendorID returns a thing of the app by its vendorThingID, or
// store.ErrNotFound.
func (db *DB) ThingByVendorID(ctx context.Context, appID, vendorThingID string) (store.Thing, error) {
	t, err := scanThing(db.pool.QueryRow(ctx, `SELECT `+thingCols+` FROM things WHERE app_id = $1 AND vendor_thing_id = $2`,
		appID, vendorThingID))
	if err != nil {
		return store.Thing{}, notFound(err, fmt.Sprintf("thing with vendorThingID %q", vendorThingID))
	}
	return t, nil
}

const updateThingQuery = `UPDATE things SET thing_type = $1, firmware_version = $2, layout_position = $3,
	properties = $4, data_grouping_interval = $5, modified_at = $6 WHERE app_id = $7 AND id = $8`

func updateThing(ctx context.Context, q querier, t store.Thing) error {
	tag, err := q.Exec(ctx, updateThingQuery, t.ThingType, t.FirmwareVersion, t.LayoutPosition, jsonArg(t.Properties),
		t.DataGroupingInterval, millis(t.ModifiedAt), t.AppID, t.ID)
	return oneRow(tag, err, fmt.Sprintf("update thing %q", t.ID))
}

// UpdateThing replaces the mutable fields of an existing thing of t.AppID,
// or returns store.ErrNotFound.
func (db *DB) UpdateThing(ctx context.Context, t store.Thing) error {
	return updateThing(ctx, db.pool, t)
}

// UpdateVendorThingID changes a thing's vendorThingID and, when
// u.PasswordHash is not empty, its password hash. The UNIQUE (app_id,
// vendor_thing_id) constraint makes a taken vendorThingID store.ErrConflict.
func (db *DB) UpdateVendorThingID(ctx context.Context, u store.VendorThingIDUpdate) error {
	tag, err := db.pool.Exec(ctx, `UPDATE things SET vendor_thing_id = $1,
		password_hash = CASE WHEN $2 = '' THEN password_hash ELSE $2 END, modified_at = $3 WHERE app_id = $4 AND id = $5`,
		u.VendorThingID, u.PasswordHash, millis(u.ModifiedAt), u.AppID, u.ThingID)
	return oneRow(tag, err, fmt.Sprintf("update vendorThingID of %q", u.ThingID))
}

// SaveOnboarding stores one onboarding in one transaction: the thing
// (inserted or updated), the installation (upserted) and the token
// (inserted). On any error nothing is stored.
func (db *DB) SaveOnboarding(ctx context.Context, o store.Onboarding) error {
	err := db.tx(ctx, func(tx pgx.Tx) error {
		if o.NewThing {
			t := o.Thing
			if _, err := tx.Exec(ctx, `INSERT INTO things (`+thingCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
				t.ID, t.AppID, t.VendorThingID, t.PasswordHash, t.ThingType, t.FirmwareVersion, t.LayoutPosition,
				jsonArg(t.Properties), t.DataGroupingInterval, millis(t.CreatedAt), millis(t.ModifiedAt)); err != nil {
				return fmt.Errorf("insert thing %q: %w", t.ID, translate(err))
			}
		} else {
			if err := updateThing(ctx, tx, o.Thing); err != nil {
				return err
			}
			if o.PasswordHash != "" {
				if _, err := tx.Exec(ctx, `UPDATE things SET password_hash = $1 WHERE app_id = $2 AND id = $3`,
					o.PasswordHash, o.Thing.AppID, o.Thing.ID); err != nil {
					return fmt.Errorf("rehash thing %q: %w", o.Thing.ID, translate(err))
				}
			}
		}
		if err := putInstallation(ctx, tx, o.Installation); err != nil {
			return err
		}
		return putToken(ctx, tx, o.Token)
	})
	if err != nil {
		return fmt.Errorf("save onboarding: %w", err)
	}
	return nil
}

// Things lists the things of an app in stored order. A search walks the
// app's things in that order (things_app) until the page is full; ASCII
// letters match either case, other characters exactly, as in SQLite.
func (db *DB) Things(ctx context.Context, appID, search, paginationKey string, limit int) ([]store.Thing, string, error) {
	after, err := parseKey(paginationKey, 0)
	if err != nil {
		return nil, "", fmt.Errorf("things of %q: %w", appID, err)
	}
	pattern := "%" + likeEscaper.Replace(asciiLower(search)) + "%"
	rows, err := db.pool.Query(ctx, `SELECT seq, `+thingCols+` FROM things WHERE app_id = $1 AND seq > $2
		AND ($3 = '' OR `+asciiLowerSQL("id")+` LIKE $4 ESCAPE '\' OR `+asciiLowerSQL("vendor_thing_id")+` LIKE $4 ESCAPE '\')
		ORDER BY seq LIMIT $5`, appID, after, search, pattern, sqlLimit(limit))
	things, seqs, err := collect(rows, err, func(r pgx.Rows) (store.Thing, int64, error) {
		var seq int64
		t, err := scanThing(r, &seq)
		return t, seq, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("things of %q: %w", appID, err)
	}
	things, next := page(things, seqs, limit)
	return things, next, nil
}

// likeEscaper makes a search string match itself in a LIKE pattern.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// asciiLower lowers the ASCII letters of s only, as asciiLowerSQL does.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// asciiLowerSQL is the SQL of col with its ASCII letters lowered: lower()
// and ILIKE would fold other letters too, by the database's locale.
func asciiLowerSQL(col string) string {
	return `translate(` + col + `, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')`
}

// PutEndNode stores (or replaces) the gateway link of an end node.
func (db *DB) PutEndNode(ctx context.Context, e store.EndNode) error {
	if _, err := db.pool.Exec(ctx, `INSERT INTO end_nodes (thing_id, gateway_id, online, modified_at) VALUES ($1, $2, $3, $4)
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
	if err := db.pool.QueryRow(ctx, `SELECT thing_id, gateway_id, online, modified_at FROM end_nodes WHERE thing_id = $1`, thingID).
		Scan(&e.ThingID, &e.GatewayID, &e.Online, &modified); err != nil {
		return store.EndNode{}, notFound(err, fmt.Sprintf("end node %q", thingID))
	}
	e.ModifiedAt = fromMillis(modified)
	return e, nil
}
