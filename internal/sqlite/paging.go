package sqlite

import (
	"fmt"
	"strconv"

	"github.com/thingif/thingif/internal/store"
)

// parseKey parses a pagination key: the decimal position after which the
// next page starts.
func parseKey(key string, def int64) (int64, error) {
	if key == "" {
		return def, nil
	}
	k, err := strconv.ParseInt(key, 10, 64)
	if err != nil || k <= 0 {
		return 0, fmt.Errorf("%w: %q", store.ErrInvalidPaginationKey, key)
	}
	return k, nil
}

// sqlLimit is the LIMIT for a page of limit items: one more tells whether
// there is a next page; -1 is no limit.
func sqlLimit(limit int) int64 {
	if limit > 0 {
		return int64(limit) + 1
	}
	return -1
}

// prefixScanner scans one leading column into first, the rest with the
// wrapped scan function's destinations.
type prefixScanner struct {
	s     scanner
	first any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.s.Scan(append([]any{p.first}, dest...)...)
}
