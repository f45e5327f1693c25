package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/thingif/thingif/internal/store"
)

func putToken(ctx context.Context, stmt *sql.Stmt, t store.Token) error {
	if _, err := stmt.ExecContext(ctx, t.Hash, t.AppID, string(t.Kind), t.Subject,
		millis(t.ExpiresAt), millis(t.CreatedAt)); err != nil {
		return fmt.Errorf("put token: %w", translate(err))
	}
	return nil
}

// PutToken stores a token. It returns store.ErrConflict if a token with the
// same digest exists and store.ErrNotFound if its app does not.
func (db *DB) PutToken(ctx context.Context, t store.Token) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return putToken(ctx, tx.StmtContext(ctx, db.ws.putToken), t)
	})
}

// Token returns the token with the given digest, or store.ErrNotFound.
// Expired tokens are returned too.
func (db *DB) Token(ctx context.Context, hash string) (store.Token, error) {
	var t store.Token
	var kind string
	var expires, created int64
	err := db.rs.token.QueryRowContext(ctx, hash).Scan(&t.Hash, &t.AppID, &kind, &t.Subject, &expires, &created)
	if err != nil {
		// The digest is a credential: keep it out of error messages.
		return store.Token{}, notFound(err, "token")
	}
	t.Kind = store.TokenKind(kind)
	t.ExpiresAt = fromMillis(expires)
	t.CreatedAt = fromMillis(created)
	return t, nil
}

// DeleteToken removes a token; deleting a missing one is not an error.
func (db *DB) DeleteToken(ctx context.Context, hash string) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, db.ws.deleteToken).ExecContext(ctx, hash); err != nil {
			return fmt.Errorf("delete token: %w", err)
		}
		return nil
	})
}

// DeleteExpiredTokens deletes the expired tokens, a chunk at a time
// (execChunks), through the partial index tokens_expires (migration 0005).
func (db *DB) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	n, err := db.execChunks(ctx, `DELETE FROM tokens WHERE rowid IN
		(SELECT rowid FROM tokens WHERE expires_at > 0 AND expires_at <= ? LIMIT ?)`, now.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("delete expired tokens: %w", err)
	}
	return n, nil
}

// PruneThingTokens keeps the thing's keep newest thing tokens, newest by
// rowid: SQLite gives a new row a rowid above every one in the table, so
// rowid order is the order the tokens were stored.
func (db *DB) PruneThingTokens(ctx context.Context, thingID string, keep int) ([]string, error) {
	var hashes []string
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.StmtContext(ctx, db.ws.pruneThingTokens).QueryContext(ctx, thingID, max(keep, 0))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				return err
			}
			hashes = append(hashes, h)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("prune thing tokens of %q: %w", thingID, err)
	}
	return hashes, nil
}
