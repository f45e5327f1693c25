package thing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Command is a command pushed to the thing. It comes in one of two forms:
// the schema form ("v1": Schema and SchemaVersion set, each action named
// with its parameters object) and the trait form ("v2": Target set, actions
// grouped by trait alias, each with any JSON value).
type Command struct {
	// ID is the commandID.
	ID string
	// Schema and SchemaVersion are set in the schema form.
	Schema        string
	SchemaVersion int
	// Target is "thing:{thingID}" in the trait form.
	Target string
	// Issuer is who sent the command, such as "user:…".
	Issuer string
	// Title, Description and Metadata are set when the sender set them.
	Title       string
	Description string
	Metadata    json.RawMessage
	// Actions are the actions to do, in order.
	Actions []Action
	// Raw is the push payload as received.
	Raw json.RawMessage
}

// Trait reports whether the command has the trait form.
func (c *Command) Trait() bool { return c.Schema == "" }

// Action is one action of a command.
type Action struct {
	// Alias is the trait alias of a trait-form action, "" in the schema
	// form.
	Alias string
	// Name is the action name, such as "turnPower".
	Name string
	// Params is the action's JSON value: an object of parameters in the
	// schema form ({"power":true}), any value in the trait form (true).
	Params json.RawMessage

	elem int // index of the element of "actions" this action came from
}

// Decode unmarshals the action's parameters into v.
func (a Action) Decode(v any) error { return json.Unmarshal(a.Params, v) }

// Result is the outcome of one action.
type Result struct {
	// Succeeded says whether the action was done.
	Succeeded bool
	// ErrorMessage says why not.
	ErrorMessage string
	// Data is optional JSON-encodable data sent with the result.
	Data any
}

// pushedCommand is the JSON of a push.
type pushedCommand struct {
	CommandID     string          `json:"commandID"`
	Schema        string          `json:"schema"`
	SchemaVersion int             `json:"schemaVersion"`
	Target        string          `json:"target"`
	Issuer        string          `json:"issuer"`
	Title         string          `json:"title"`
	Description   string          `json:"description"`
	Metadata      json.RawMessage `json:"metadata"`
	Actions       json.RawMessage `json:"actions"`
}

// errCommand is wrapped by parseCommand's errors.
var errCommand = errors.New("invalid command")

// ParseCommand parses a command push payload. Object members keep their
// order: a schema-form element {"a":{…},"b":{…}} gives actions a then b.
func ParseCommand(payload []byte) (*Command, error) {
	var p pushedCommand
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("%w: %w", errCommand, err)
	}
	if p.CommandID == "" {
		return nil, fmt.Errorf("%w: no commandID", errCommand)
	}
	c := &Command{
		ID: p.CommandID, Schema: p.Schema, SchemaVersion: p.SchemaVersion, Target: p.Target,
		Issuer: p.Issuer, Title: p.Title, Description: p.Description, Metadata: p.Metadata,
		Raw: bytes.Clone(payload),
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(p.Actions, &elems); err != nil {
		return nil, fmt.Errorf("%w: actions: %w", errCommand, err)
	}
	for i, e := range elems {
		members, err := orderedMembers(e)
		if err != nil {
			return nil, fmt.Errorf("%w: action %d: %w", errCommand, i, err)
		}
		for _, m := range members {
			if c.Trait() {
				var list []json.RawMessage
				if err := json.Unmarshal(m.value, &list); err != nil {
					return nil, fmt.Errorf("%w: alias %q: want an array: %w", errCommand, m.name, err)
				}
				for _, item := range list {
					acts, err := orderedMembers(item)
					if err != nil {
						return nil, fmt.Errorf("%w: alias %q: %w", errCommand, m.name, err)
					}
					for _, a := range acts {
						c.Actions = append(c.Actions, Action{Alias: m.name, Name: a.name, Params: a.value, elem: i})
					}
				}
				continue
			}
			c.Actions = append(c.Actions, Action{Name: m.name, Params: m.value, elem: i})
		}
	}
	return c, nil
}

// member is one member of a JSON object.
type member struct {
	name  string
	value json.RawMessage
}

// orderedMembers returns the members of a JSON object in document order.
func orderedMembers(obj json.RawMessage) ([]member, error) {
	d := json.NewDecoder(bytes.NewReader(obj))
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("want an object")
	}
	var ms []member
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, err
		}
		ms = append(ms, member{name: name, value: v})
	}
	return ms, nil
}

// resultJSON is one action result on the wire.
type resultJSON struct {
	Succeeded    bool   `json:"succeeded"`
	ErrorMessage string `json:"errorMessage,omitempty"`
	Data         any    `json:"data,omitempty"`
}

// actionResults builds the body of PUT …/action-results, in the shape of
// the command's actions: the schema form
// {"actionResults":[{"turnPower":{"succeeded":true}},…]}, the trait form
// {"actionResults":[{"alias":[{"turnPower":{"succeeded":true}},…]},…]}. A
// missing result is a failure.
func actionResults(c *Command, results []Result) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"actionResults":[`)
	for i, a := range c.Actions {
		r := Result{ErrorMessage: "no result"}
		if i < len(results) {
			r = results[i]
		}
		rj, err := json.Marshal(resultJSON(r))
		if err != nil {
			return nil, fmt.Errorf("action %s result: %w", a.Name, err)
		}
		name, _ := json.Marshal(a.Name)
		first := i == 0
		newElem := first || c.Actions[i-1].elem != a.elem || c.Actions[i-1].Alias != a.Alias
		if c.Trait() {
			if newElem {
				if !first {
					b.WriteString("]},")
				}
				alias, _ := json.Marshal(a.Alias)
				b.WriteByte('{')
				b.Write(alias)
				b.WriteString(":[")
			} else {
				b.WriteByte(',')
			}
			b.WriteByte('{')
			b.Write(name)
			b.WriteByte(':')
			b.Write(rj)
			b.WriteByte('}')
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		b.Write(name)
		b.WriteByte(':')
		b.Write(rj)
		b.WriteByte('}')
	}
	if c.Trait() && len(c.Actions) > 0 {
		b.WriteString("]}")
	}
	b.WriteString("]}")
	return b.Bytes(), nil
}
