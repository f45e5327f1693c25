package codec

import (
	"fmt"
	"strings"
)

const (
	topicPrefix = "p/"
	appsLevels  = "/thing-if/apps/"
)

// Topic is a parsed thing-if request topic
// p/{ClientID}/thing-if/apps/{AppID}/{Rest}. ClientID is "anonymous" on the
// onboarding broker and the thing's mqttTopic on the API broker.
type Topic struct {
	ClientID string
	AppID    string
	// Rest is the REST path after /thing-if/apps/{AppID}/, without a leading
	// slash, such as "onboardings" or "targets/thing:th.1/states". It may end
	// with a query string ("commands?bestEffortLimit=10").
	Rest string
}

// ParseTopic parses a thing-if request topic. ClientID and AppID must be
// single non-empty topic levels and Rest non-empty; none may hold the MQTT
// wildcards + and #. Rest must not start with "/", and neither AppID nor a
// level of Rest's path may be "." or "..", so that the REST path can never
// leave /thing-if/apps/{AppID}/. Anything else is ErrTopic.
func ParseTopic(topic string) (Topic, error) {
	rest, ok := strings.CutPrefix(topic, topicPrefix)
	if !ok {
		return Topic{}, fmt.Errorf("topic %.80q: no %q prefix: %w", topic, topicPrefix, ErrTopic)
	}
	var t Topic
	t.ClientID, rest, ok = strings.Cut(rest, "/")
	if ok {
		rest, ok = strings.CutPrefix(rest, appsLevels[1:])
	}
	if ok {
		t.AppID, t.Rest, ok = strings.Cut(rest, "/")
	}
	if !ok {
		return Topic{}, fmt.Errorf("topic %.80q: not p/{client}%s{app}/{path}: %w", topic, appsLevels, ErrTopic)
	}
	if err := t.validate(); err != nil {
		return Topic{}, fmt.Errorf("topic %.80q: %w", topic, err)
	}
	return t, nil
}

// validate checks the fields as ParseTopic does.
func (t Topic) validate() error {
	switch {
	case t.ClientID == "" || strings.ContainsAny(t.ClientID, "/+#"):
		return fmt.Errorf("client ID %q: %w", t.ClientID, ErrTopic)
	case t.AppID == "" || t.AppID == "." || t.AppID == ".." || strings.ContainsAny(t.AppID, "/+#"):
		return fmt.Errorf("app ID %q: %w", t.AppID, ErrTopic)
	case t.restPath() == "" || t.Rest[0] == '/' || strings.ContainsAny(t.Rest, "+#"):
		return fmt.Errorf("path %.80q: %w", t.Rest, ErrTopic)
	}
	if hasDotSegment(t.restPath()) {
		return fmt.Errorf("path %.80q: dot segment: %w", t.Rest, ErrTopic)
	}
	return nil
}

// hasDotSegment reports whether a slash-separated path has a "." or ".."
// segment.
func hasDotSegment(p string) bool {
	for p != "" {
		var seg string
		seg, p, _ = strings.Cut(p, "/")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// restPath returns Rest without its query string.
func (t Topic) restPath() string {
	p, _, _ := strings.Cut(t.Rest, "?")
	return p
}

// String returns the MQTT topic p/{ClientID}/thing-if/apps/{AppID}/{Rest}.
func (t Topic) String() string {
	return topicPrefix + t.ClientID + appsLevels + t.AppID + "/" + t.Rest
}

// Path returns the REST path /thing-if/apps/{AppID}/{Rest}, without the
// query string if Rest has one (see RawQuery).
func (t Topic) Path() string {
	return appsLevels + t.AppID + "/" + t.restPath()
}

// RawQuery returns the query string of Rest, without the "?", or "".
func (t Topic) RawQuery() string {
	_, q, _ := strings.Cut(t.Rest, "?")
	return q
}
