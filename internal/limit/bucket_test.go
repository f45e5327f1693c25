package limit

import (
	"fmt"
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	c := newClock()
	b := NewBuckets(BucketConfig{Rate: 2, Burst: 3, Now: c.now})
	steps := []struct {
		name    string
		advance time.Duration
		key     string
		ok      bool
		retry   time.Duration
	}{
		{"burst 1", 0, "a", true, 0},
		{"burst 2", 0, "a", true, 0},
		{"burst 3", 0, "a", true, 0},
		{"empty", 0, "a", false, time.Second},
		{"another key has its own bucket", 0, "b", true, 0},
		{"half a second refills one", 500 * time.Millisecond, "a", true, 0},
		{"empty again", 0, "a", false, time.Second},
		{"refills up to the burst only", time.Hour, "a", true, 0},
		{"burst 2 after idle", 0, "a", true, 0},
		{"burst 3 after idle", 0, "a", true, 0},
		{"no fourth", 0, "a", false, time.Second},
	}
	for _, s := range steps {
		c.add(s.advance)
		retry, ok := b.Take(s.key)
		if ok != s.ok || retry != s.retry {
			t.Fatalf("%s: Take = %v, %v; want %v, %v", s.name, retry, ok, s.retry, s.ok)
		}
	}
}

func TestBucketRetryAfter(t *testing.T) {
	c := newClock()
	b := NewBuckets(BucketConfig{Rate: 0.1, Burst: 1, Now: c.now})
	b.Take("k")
	if retry, ok := b.Take("k"); ok || retry != 10*time.Second {
		t.Fatalf("Take = %v, %v; want 10s, false", retry, ok)
	}
	c.add(9 * time.Second)
	if retry, ok := b.Take("k"); ok || retry != time.Second {
		t.Fatalf("Take 9 s later = %v, %v; want 1s, false", retry, ok)
	}
	c.add(time.Second)
	if _, ok := b.Take("k"); !ok {
		t.Fatal("refused after 10 s")
	}
}

func TestBucketOff(t *testing.T) {
	var nilBuckets *Buckets
	for name, b := range map[string]*Buckets{"zero rate": NewBuckets(BucketConfig{}), "nil": nilBuckets} {
		t.Run(name, func(t *testing.T) {
			for i := range 1000 {
				if _, ok := b.Take("k"); !ok {
					t.Fatalf("take %d refused", i)
				}
			}
		})
	}
}

func TestBucketMaxKeys(t *testing.T) {
	c := newClock()
	b := NewBuckets(BucketConfig{Rate: 1, Burst: 1, MaxKeys: 3, Now: c.now})
	for i := range 10 {
		b.Take(fmt.Sprint("k", i))
	}
	if got, want := b.Len(), 3; got != want {
		t.Fatalf("Len = %d, want %d", got, want)
	}
	// The most recent keys are the ones kept: k9 is still empty.
	if _, ok := b.Take("k9"); ok {
		t.Fatal("k9 was dropped instead of the oldest key")
	}
}
