package codec

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  Topic
		path  string
		query string
		err   error
	}{
		{
			topic: "p/anonymous/thing-if/apps/app1/onboardings",
			want:  Topic{ClientID: "anonymous", AppID: "app1", Rest: "onboardings"},
			path:  "/thing-if/apps/app1/onboardings",
		},
		{
			topic: "p/Xk3mqttTopic/thing-if/apps/app1/targets/thing:th.1/states",
			want:  Topic{ClientID: "Xk3mqttTopic", AppID: "app1", Rest: "targets/thing:th.1/states"},
			path:  "/thing-if/apps/app1/targets/thing:th.1/states",
		},
		{
			topic: "p/c/thing-if/apps/a/targets/THING:th.1/commands/c1/action-results",
			want:  Topic{ClientID: "c", AppID: "a", Rest: "targets/THING:th.1/commands/c1/action-results"},
			path:  "/thing-if/apps/a/targets/THING:th.1/commands/c1/action-results",
		},
		{
			topic: "p/c/thing-if/apps/a/targets/thing:th.1/commands?bestEffortLimit=10&paginationKey=x/y",
			want:  Topic{ClientID: "c", AppID: "a", Rest: "targets/thing:th.1/commands?bestEffortLimit=10&paginationKey=x/y"},
			path:  "/thing-if/apps/a/targets/thing:th.1/commands",
			query: "bestEffortLimit=10&paginationKey=x/y",
		},
		{
			topic: "p/c/thing-if/apps/a/states/",
			want:  Topic{ClientID: "c", AppID: "a", Rest: "states/"},
			path:  "/thing-if/apps/a/states/",
		},
		{
			topic: "p/c/thing-if/apps/a/x/..y/.z",
			want:  Topic{ClientID: "c", AppID: "a", Rest: "x/..y/.z"},
			path:  "/thing-if/apps/a/x/..y/.z",
		},
		{topic: "", err: ErrTopic},
		{topic: "p/", err: ErrTopic},
		{topic: "p/c", err: ErrTopic},
		{topic: "/p/c/thing-if/apps/a/x", err: ErrTopic},
		{topic: "q/c/thing-if/apps/a/x", err: ErrTopic},
		{topic: "P/c/thing-if/apps/a/x", err: ErrTopic},
		{topic: "p//thing-if/apps/a/x", err: ErrTopic},
		{topic: "p/c/thing-if/apps//x", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a/", err: ErrTopic},
		{topic: "p/c/thing-if/app/a/x", err: ErrTopic},
		{topic: "p/c/thing-if/apps", err: ErrTopic},
		{topic: "p/c/d/thing-if/apps/a/x", err: ErrTopic},
		{topic: "p/+/thing-if/apps/a/x", err: ErrTopic},
		{topic: "p/#", err: ErrTopic},
		{topic: "p/c/thing-if/apps/+/x", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a#/x", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a/targets/+/states", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a/#", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a//x", err: ErrTopic},
		{topic: "p/c/thing-if/apps/../x", err: ErrTopic},
		{topic: "p/c/thing-if/apps/./x", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a/../b/onboardings", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a/targets/./states", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a/..", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a/x/..?q", err: ErrTopic},
		{topic: "p/c/thing-if/apps/a/?q=1", err: ErrTopic},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			got, err := ParseTopic(tt.topic)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || got != (Topic{}) {
					t.Fatalf("ParseTopic()=%+v, %v; want error %v", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTopic(): %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseTopic()=%+v, want %+v", got, tt.want)
			}
			if got, want := got.String(), tt.topic; got != want {
				t.Errorf("String()=%q, want %q", got, want)
			}
			if got, want := got.Path(), tt.path; got != want {
				t.Errorf("Path()=%q, want %q", got, want)
			}
			if got, want := got.RawQuery(), tt.query; got != want {
				t.Errorf("RawQuery()=%q, want %q", got, want)
			}
		})
	}
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"p/anonymous/thing-if/apps/app1/onboardings",
		"p/c/thing-if/apps/a/targets/thing:th.1/states",
		"p/c/thing-if/apps/a/targets/thing:th.1/commands?bestEffortLimit=10",
		"p/c/thing-if/apps/a/../b",
		"p/+/thing-if/apps/a/x",
		"p//thing-if/apps/a/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		tp, err := ParseTopic(topic)
		if err != nil {
			if !errors.Is(err, ErrTopic) {
				t.Fatalf("ParseTopic(%q) error %v is not ErrTopic", topic, err)
			}
			return
		}
		if got := tp.String(); got != topic {
			t.Fatalf("ParseTopic(%q).String()=%q", topic, got)
		}
		again, err := ParseTopic(tp.String())
		if err != nil || again != tp {
			t.Fatalf("reparse of %q: %+v, %v; want %+v", topic, again, err, tp)
		}
		prefix := "/thing-if/apps/" + tp.AppID + "/"
		if p := tp.Path(); !strings.HasPrefix(p, prefix) || len(p) == len(prefix) {
			t.Fatalf("Path()=%q for %q", p, topic)
		}
		if hasDotSegment(tp.Path()) {
			t.Fatalf("Path()=%q has a dot segment", tp.Path())
		}
	})
}
