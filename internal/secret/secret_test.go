package secret

import (
	"strings"
	"testing"
)

func TestPasswordRoundTrip(t *testing.T) {
	tests := []struct {
		name, password, try string
		want                bool
	}{
		{"same", "pass-1", "pass-1", true},
		{"different", "pass-1", "pass-2", false},
		{"empty stored", "", "", true},
		{"empty tried", "pass-1", "", false},
		{"unicode", "pässwörd", "pässwörd", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := HashPassword(tt.password, Cost{Time: 1, Memory: 64, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(h, tt.password) && tt.password != "" {
				t.Fatalf("hash %q contains the password", h)
			}
			got, err := VerifyPassword(h, tt.try)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("VerifyPassword(%q)=%v, want %v", tt.try, got, tt.want)
			}
		})
	}
}

func TestHashesAreSalted(t *testing.T) {
	a, _ := HashPassword("x", Cost{})
	b, _ := HashPassword("x", Cost{})
	if a == b {
		t.Fatalf("two hashes of the same password are equal: %q", a)
	}
	if !strings.HasPrefix(a, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("default hash %q does not carry the default cost", a)
	}
}

func TestVerifyMalformed(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2id$v=19$m=1,t=1,p=1$", "$bcrypt$v=19$m=8,t=1,p=1$AAAA$AAAA",
		"$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=8,t=0,p=1$AAAA$AAAA", "$argon2id$v=19$m=8,t=1,p=1$!!$AAAA"} {
		if _, err := VerifyPassword(h, "x"); err == nil {
			t.Errorf("VerifyPassword(%q) accepted a malformed hash", h)
		}
	}
}

func TestTokens(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a == b || len(a) != 43 {
		t.Fatalf("NewToken()=%q, %q", a, b)
	}
	if HashToken(a) == HashToken(b) || len(HashToken(a)) != 64 {
		t.Fatalf("HashToken digests wrong")
	}
	if !EqualDigest(HashToken(a), HashToken(a)) || EqualDigest(HashToken(a), HashToken(b)) {
		t.Fatalf("EqualDigest wrong")
	}
	if got := len(NewID(6)); got != 12 {
		t.Fatalf("len(NewID(6))=%d, want 12", got)
	}
}

func BenchmarkHashPasswordDefault(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("thing-password", Cost{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVerifierCachesOnlySuccess(t *testing.T) {
	var v Verifier
	h, _ := HashPassword("key", Cost{Time: 1, Memory: 64, Threads: 1})
	for i := 0; i < 3; i++ {
		if !v.Verify(h, "key") {
			t.Fatalf("try %d: right key refused", i)
		}
		if v.Verify(h, "wrong") {
			t.Fatalf("try %d: wrong key accepted", i)
		}
	}
	h2, _ := HashPassword("other", Cost{Time: 1, Memory: 64, Threads: 1})
	if v.Verify(h2, "key") {
		t.Fatal("cached success leaked to another hash")
	}
	if v.Verify("garbage", "key") {
		t.Fatal("malformed hash matched")
	}
}
