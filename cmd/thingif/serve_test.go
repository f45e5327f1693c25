package main

import (
	"testing"

	"github.com/thingif/thingif/internal/limit"
)

func TestRateFlag(t *testing.T) {
	tests := []struct {
		in   string
		want limit.BucketConfig
		ok   bool
	}{
		{"10", limit.BucketConfig{Rate: 10}, true},
		{"0.5:3", limit.BucketConfig{Rate: 0.5, Burst: 3}, true},
		{"-1", limit.BucketConfig{Rate: -1}, true},
		{"0", limit.BucketConfig{}, false},
		{"x", limit.BucketConfig{}, false},
		{"10:0", limit.BucketConfig{}, false},
		{"NaN", limit.BucketConfig{}, false},
		{"", limit.BucketConfig{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var c limit.BucketConfig
			err := rateFlag(&c)(tt.in)
			if got := err == nil; got != tt.ok {
				t.Fatalf("rateFlag(%q) err=%v, want ok %v", tt.in, err, tt.ok)
			}
			if tt.ok && (c.Rate != tt.want.Rate || c.Burst != tt.want.Burst) {
				t.Fatalf("rateFlag(%q) = %+v, want %+v", tt.in, c, tt.want)
			}
		})
	}
}
