package trigger

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed cron expression of five fields: minute (0-59), hour
// (0-23), day of month (1-31), month (1-12) and day of week (0-6, Sunday is
// 0; 7 is Sunday too). Each field is *, a number, a range a-b, a list of
// those separated by commas, any of them with a /step. As in Vixie cron,
// when both day fields are restricted a day matching either is chosen.
// Times are in UTC.
type Schedule struct {
	expr                     string
	minute, hour, dom, month uint64
	dow                      uint64
	domStar, dowStar         bool
}

// cronField describes one field of a cron expression.
type cronField struct {
	name     string
	min, max int
}

var cronFields = [5]cronField{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7}}

// ParseSchedule parses a five-field cron expression.
func ParseSchedule(expr string) (Schedule, error) {
	parts := strings.Fields(expr)
	if len(parts) != 5 {
		return Schedule{}, fmt.Errorf("%w: schedule %q: want 5 fields (minute hour day-of-month month day-of-week)", ErrInvalid, expr)
	}
	var sets [5]uint64
	for i, p := range parts {
		set, err := parseCronField(p, cronFields[i])
		if err != nil {
			return Schedule{}, fmt.Errorf("%w: schedule %q: %s: %v", ErrInvalid, expr, cronFields[i].name, err)
		}
		sets[i] = set
	}
	if sets[4]&(1<<7) != 0 { // 7 is Sunday
		sets[4] |= 1
		sets[4] &^= 1 << 7
	}
	return Schedule{
		expr: strings.Join(parts, " "), minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4],
		domStar: parts[2] == "*" || strings.HasPrefix(parts[2], "*/"),
		dowStar: parts[4] == "*" || strings.HasPrefix(parts[4], "*/"),
	}, nil
}

func parseCronField(s string, f cronField) (uint64, error) {
	var set uint64
	for item := range strings.SplitSeq(s, ",") {
		rng, stepStr, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad step %q", stepStr)
			}
			step = n
		}
		lo, hi := f.min, f.max
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = strconv.Atoi(a); err != nil {
				return 0, fmt.Errorf("bad value %q", a)
			}
			hi = lo
			if isRange {
				if hi, err = strconv.Atoi(b); err != nil {
					return 0, fmt.Errorf("bad value %q", b)
				}
			} else if hasStep {
				hi = f.max
			}
		}
		if lo < f.min || hi > f.max || lo > hi {
			return 0, fmt.Errorf("%q is outside %d-%d", item, f.min, f.max)
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// String returns the expression.
func (s Schedule) String() string { return s.expr }

// Next returns the first minute strictly after t that the schedule matches,
// or the zero time if there is none within five years (such as 30 February).
func (s Schedule) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	end := t.AddDate(5, 0, 0)
	for t.Before(end) {
		if s.month&(1<<int(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !s.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if s.hour&(1<<t.Hour()) == 0 {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, time.UTC)
			continue
		}
		if s.minute&(1<<t.Minute()) == 0 {
			// Jump to the next allowed minute of this hour, if any.
			rest := s.minute >> (t.Minute() + 1)
			if rest == 0 {
				t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, time.UTC)
			} else {
				t = t.Add(time.Duration(bits.TrailingZeros64(rest)+1) * time.Minute)
			}
			continue
		}
		return t
	}
	return time.Time{}
}

func (s Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<t.Day()) != 0
	dow := s.dow&(1<<int(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}
