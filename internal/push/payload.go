package push

import (
	"encoding/json"

	"github.com/thingif/thingif/internal/store"
)

// pushedCommand is the JSON a thing receives on its mqttTopic (PROTOCOL.md
// §5): raw JSON, no status line. The schema form carries schema and
// schemaVersion; the trait form carries target instead.
type pushedCommand struct {
	Schema        string          `json:"schema,omitempty"`
	SchemaVersion int             `json:"schemaVersion,omitempty"`
	CommandID     string          `json:"commandID"`
	Actions       json.RawMessage `json:"actions"`
	Issuer        string          `json:"issuer,omitempty"`
	Target        string          `json:"target,omitempty"`
	Title         string          `json:"title,omitempty"`
	Description   string          `json:"description,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
}

// CommandPayload returns the push payload of a command.
func CommandPayload(c store.Command) ([]byte, error) {
	p := pushedCommand{
		CommandID:   c.ID,
		Actions:     c.Actions,
		Issuer:      c.Issuer,
		Title:       c.Title,
		Description: c.Description,
		Metadata:    c.Metadata,
	}
	if c.Schema != "" {
		p.Schema, p.SchemaVersion = c.Schema, c.SchemaVersion
	} else {
		p.Target = "thing:" + c.ThingID
	}
	return json.Marshal(p)
}

// commandSize is what holding the command costs, roughly: its variable
// parts, which dominate.
func commandSize(c *store.Command) int {
	return len(c.ID) + len(c.AppID) + len(c.ThingID) + len(c.Issuer) + len(c.Schema) + len(c.Actions) +
		len(c.ActionResults) + len(c.Title) + len(c.Description) + len(c.Metadata)
}
