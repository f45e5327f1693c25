package trigger

import (
	"errors"
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		expr, from, want string
	}{
		{"* * * * *", "2026-01-02 03:04", "2026-01-02 03:05"},
		{"0 * * * *", "2026-01-02 03:04", "2026-01-02 04:00"},
		{"*/15 * * * *", "2026-01-02 03:14", "2026-01-02 03:15"},
		{"*/15 * * * *", "2026-01-02 03:45", "2026-01-02 04:00"},
		{"30 9 * * *", "2026-01-02 09:30", "2026-01-03 09:30"},
		{"0 0 1 * *", "2026-01-02 03:04", "2026-02-01 00:00"},
		{"0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00"},
		{"0 8 * * 1-5", "2026-01-02 09:00", "2026-01-05 08:00"}, // Friday → Monday
		{"0 8 * * 7", "2026-01-02 09:00", "2026-01-04 08:00"},   // 7 is Sunday
		{"0 12 13 * 5", "2026-01-01 00:00", "2026-01-02 12:00"}, // day 13 or a Friday
		{"5,10 1 * * *", "2026-01-02 01:07", "2026-01-02 01:10"},
		{"0 0 30 2 *", "2026-01-01 00:00", ""}, // never
	}
	for _, tt := range tests {
		t.Run(tt.expr+" after "+tt.from, func(t *testing.T) {
			s, err := ParseSchedule(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Next(at(tt.from))
			if tt.want == "" {
				if !got.IsZero() {
					t.Fatalf("Next=%v, want none", got)
				}
				return
			}
			if want := at(tt.want); !got.Equal(want) {
				t.Fatalf("Next=%v, want %v", got, want)
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, expr := range []string{"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "1-x * * * *"} {
		if _, err := ParseSchedule(expr); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSchedule(%q) err=%v, want ErrInvalid", expr, err)
		}
	}
}
