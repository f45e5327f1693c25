package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/thingif/thingif/internal/store"
)

func putToken(ctx context.Context, q querier, t store.Token) error {
	if _, err := q.Exec(ctx, `INSERT INTO tokens (hash, app_id, kind, subject, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.Hash, t.AppID, string(t.Kind), t.Subject,
		millis(t.ExpiresAt), millis(t.CreatedAt)); err != nil {
		return fmt.Errorf("put token: %w", translate(err))
	}
	return nil
}

// PutToken stores a token. It returns store.ErrConflict if a token with the
// same digest exists and store.ErrNotFound if its app does not.
func (db *DB) PutToken(ctx context.Context, t store.Token) error {
	return putToken(ctx, db.pool, t)
}

// Token returns the token with the given digest, or store.ErrNotFound.
// Expired tokens are returned too.
func (db *DB) Token(ctx context.Context, hash string) (store.Token, error) {
	var t store.Token
	var kind string
	var expires, created int64
	err := db.pool.QueryRow(ctx, `SELECT hash, app_id, kind, subject, expires_at, created_at FROM tokens WHERE hash = $1`, hash).
		Scan(&t.Hash, &t.AppID, &kind, &t.Subject, &expires, &created)
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
	if _, err := db.pool.Exec(ctx, `DELETE FROM tokens WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	return nil
}

// DeleteExpiredTokens deletes the expired tokens, a chunk at a time, through
// the partial index tokens_expires.
func (db *DB) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	n, err := db.execChunks(ctx, `DELETE FROM tokens WHERE hash IN
		(SELECT hash FROM tokens WHERE expires_at > 0 AND expires_at <= $1 LIMIT $2)`, now.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("delete expired tokens: %w", err)
	}
	return n, nil
}

// PruneThingTokens keeps the thing's keep newest thing tokens, newest by
// seq, the order they were stored in.
func (db *DB) PruneThingTokens(ctx context.Context, thingID string, keep int) ([]string, error) {
	rows, err := db.pool.Query(ctx, `DELETE FROM tokens WHERE hash IN (SELECT hash FROM tokens
		WHERE kind = 'thing' AND subject = $1 ORDER BY seq DESC OFFSET $2) RETURNING hash`, thingID, max(keep, 0))
	if err != nil {
		return nil, fmt.Errorf("prune thing tokens of %q: %w", thingID, err)
	}
	hashes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("prune thing tokens of %q: %w", thingID, err)
	}
	return hashes, nil
}
