package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestSendingQueriesUseIndexes: the queries on SENDING commands, which run
// on every push, REST command and start, are served by the partial indexes
// of migration 0003 and never scan the commands table; the history prune
// finds its chunks by time; the token prunes find theirs by expiry and by
// thing (migration 0005), in stored order without a sort; a page of state
// history is a range of its index, in history order without a sort.
func TestSendingQueriesUseIndexes(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	for _, tt := range []struct {
		query string
		args  []any
		index string
	}{
		{pendingCommandsQuery, []any{"th", "c1", 8}, "commands_sending"},
		{`SELECT COUNT(*) FROM (SELECT 1 FROM commands WHERE thing_id = ? AND state = 'SENDING' LIMIT ?)`, []any{"th", 5}, "commands_sending"},
		{`SELECT DISTINCT thing_id FROM commands WHERE state = 'SENDING' ORDER BY thing_id`, nil, "commands_sending"},
		{`UPDATE commands SET state = 'EXPIRED', modified_at = 0 WHERE seq IN
			(SELECT seq FROM commands WHERE state = 'SENDING' AND created_at < ? LIMIT ?)`, []any{int64(5), 10}, "commands_sending_created"},
		{`DELETE FROM state_history WHERE seq IN (SELECT seq FROM state_history WHERE at < ? LIMIT ?)`, []any{int64(5), 10}, "state_history_at"},
		{`DELETE FROM tokens WHERE rowid IN
			(SELECT rowid FROM tokens WHERE expires_at > 0 AND expires_at <= ? LIMIT ?)`, []any{int64(5), 10}, "tokens_expires"},
		{pruneThingTokensQuery, []any{"th", 5}, "tokens_thing"},
		{historyPageQuery, []any{"th", "AC", int64(0), int64(10), int64(5), int64(7), 100}, "state_history_thing_alias_at"},
	} {
		rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tt.query, tt.args...)
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if !strings.Contains(got, "INDEX "+tt.index) || strings.Contains(got, "TEMP B-TREE") {
			t.Errorf("%s\nplan: %s\nwant it to use %s, without sorting", tt.query, got, tt.index)
		}
	}
}
