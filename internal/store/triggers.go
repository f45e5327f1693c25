package store

import (
	"encoding/json"
	"time"
)

// Trigger event sources.
const (
	EventStates       = "STATES"
	EventSchedule     = "SCHEDULE"
	EventScheduleOnce = "SCHEDULE_ONCE"
)

// Trigger is a rule of a thing: when its predicate fires, it sends a command
// to its target thing or posts to the configured webhook ("server code").
type Trigger struct {
	ID      string
	AppID   string
	ThingID string // the thing whose states it watches and whose triggers list holds it
	// EventSource is the predicate's eventSource: EventStates, EventSchedule
	// or EventScheduleOnce. Stored apart so that the scheduler can find its
	// triggers without decoding every predicate.
	EventSource string
	Predicate   json.RawMessage // the predicate JSON, as validated
	// Command is the command template JSON (trait or schema form), or nil.
	Command json.RawMessage
	// ServerCode is the server-code JSON ({"endpoint":…,"parameters":…}),
	// or nil. Exactly one of Command and ServerCode is set.
	ServerCode     json.RawMessage
	Title          string
	Description    string
	Metadata       json.RawMessage // JSON object, or nil
	Disabled       bool
	DisabledReason string
	// Run is what the trigger engine last recorded.
	Run        TriggerRun
	CreatedAt  time.Time
	ModifiedAt time.Time
}

// TriggerRun is the evaluation state of a trigger, kept so that transitions
// (false→true) and schedules survive a restart.
type TriggerRun struct {
	// Evaluated tells whether the predicate has been evaluated since the
	// trigger was created or its predicate changed; Satisfied is the result.
	Evaluated bool
	Satisfied bool
	// FiredAt is when the trigger last fired; zero if never.
	FiredAt time.Time
}

// TriggerResult is the outcome of one server-code (webhook) execution.
type TriggerResult struct {
	TriggerID     string
	ThingID       string
	Succeeded     bool
	ReturnedValue json.RawMessage // the webhook's JSON answer, or nil
	Error         string          // why it failed; empty on success
	Endpoint      string
	ExecutedAt    time.Time
}
