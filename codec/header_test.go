package codec

import "testing"

func TestHeaderSpelling(t *testing.T) {
	tests := []struct{ in, want string }{
		{"x-kii-requestid", "X-Kii-RequestID"},
		{"X-Kii-Requestid", "X-Kii-RequestID"},
		{"X-KII-REQUESTID", "X-Kii-RequestID"},
		{"X-Kii-RequestID", "X-Kii-RequestID"},
		{"content-type", "Content-Type"},
		{"CONTENT-TYPE", "Content-Type"},
		{"x-mqtt-ttl", "X-MQTT-TTL"},
		{"X-Mqtt-Ttl", "X-MQTT-TTL"},
		{"x-kii-appid", "X-Kii-AppID"},
		{"x-kii-appkey", "X-Kii-AppKey"},
		{"etag", "ETag"},
		{"www-authenticate", "WWW-Authenticate"},
		{"authorization", "Authorization"},
		{"x-custom-header-that-is-long", "X-Custom-Header-That-Is-Long"},
		{"", ""},
		{"bad name", "bad name"}, // not a token: textproto leaves it alone
	}
	for _, tt := range tests {
		if got := HeaderSpelling(tt.in); got != tt.want {
			t.Errorf("HeaderSpelling(%q)=%q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSpellingsTable(t *testing.T) {
	for lower, spelled := range spellings {
		if len(lower) > maxSpelled {
			t.Errorf("spellings key %q longer than maxSpelled=%d", lower, maxSpelled)
		}
		if got := HeaderSpelling(spelled); got != spelled {
			t.Errorf("HeaderSpelling(%q)=%q, want it unchanged", spelled, got)
		}
	}
}

func TestIsToken(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"GET", true},
		{"M-SEARCH", true},
		{"!#$%&'*+-.^_`|~09azAZ", true},
		{"", false},
		{"a b", false},
		{"a:b", false},
		{"a\tb", false},
		{"a(b)", false},
		{"\xc3\xa9", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		if got := isToken(tt.in); got != tt.want {
			t.Errorf("isToken(%q)=%v, want %v", tt.in, got, tt.want)
		}
	}
}
