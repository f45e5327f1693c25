package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// MergeObject shallowly merges the top-level fields of patch into old, both
// JSON objects, and returns the merged object in compact form. A field in
// patch replaces the field of the same name in old (a null value included:
// this is not RFC 7386 merge patch, which would delete it). Fields keep the
// order of old, followed by the new fields in the order of patch. It is an
// error if either argument is not a JSON object.
//
// Backends use it for StateMerge so that every backend merges alike.
func MergeObject(old, patch json.RawMessage) (json.RawMessage, error) {
	oldFields, err := objectFields(old)
	if err != nil {
		return nil, fmt.Errorf("merge: old: %w", err)
	}
	patchFields, err := objectFields(patch)
	if err != nil {
		return nil, fmt.Errorf("merge: patch: %w", err)
	}

	idx := make(map[string]int, len(oldFields)+len(patchFields))
	merged := make([]field, 0, len(oldFields)+len(patchFields))
	for _, f := range append(oldFields, patchFields...) {
		if i, ok := idx[f.name]; ok {
			merged[i].value = f.value
			continue
		}
		idx[f.name] = len(merged)
		merged = append(merged, f)
	}

	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range merged {
		if i > 0 {
			buf.WriteByte(',')
		}
		name, err := marshalNoEscape(f.name)
		if err != nil {
			return nil, fmt.Errorf("merge: field name: %w", err)
		}
		buf.Write(name)
		buf.WriteByte(':')
		if err := json.Compact(&buf, f.value); err != nil {
			return nil, fmt.Errorf("merge: field %q: %w", f.name, err)
		}
	}
	buf.WriteByte('}')
	return json.RawMessage(buf.Bytes()), nil
}

// ErrNumberRange is wrapped by CompactObject's error for a number literal
// that a 64-bit float cannot hold (1e400): every reader of the stored object
// (history queries, triggers, JSON clients in most languages) would fail on
// it or see an infinity, which JSON cannot even write back.
var ErrNumberRange = errors.New("number out of the range of a 64-bit float")

// CompactObject checks that body is a JSON object whose numbers all fit a
// 64-bit float, and returns it without insignificant spaces, in one pass
// (plus a scan of the number literals that could overflow): parsing it into
// fields, as MergeObject does, was 6 % of the server's CPU in the state
// bench. A name given twice stays as given; JSON readers take the last, as
// a merge would. A number out of range is an error wrapping ErrNumberRange
// that names it.
func CompactObject(body json.RawMessage) (json.RawMessage, error) {
	var buf bytes.Buffer
	buf.Grow(len(body))
	if err := json.Compact(&buf, body); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	b := buf.Bytes()
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	if err := checkNumbers(b); err != nil {
		return nil, err
	}
	return json.RawMessage(b), nil
}

// CheckNumbers checks that the JSON value v (of any kind) is valid and that
// its numbers all fit a 64-bit float, for values stored as they came that
// are not objects (action results are an array). A number out of range is
// an error wrapping ErrNumberRange that names it.
func CheckNumbers(v json.RawMessage) error {
	var buf bytes.Buffer
	buf.Grow(len(v))
	if err := json.Compact(&buf, v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return checkNumbers(buf.Bytes())
}

// maxNumberQuote bounds how much of a bad number an error message quotes.
const maxNumberQuote = 40

// checkNumbers refuses a number literal of the valid, compact JSON text b
// that overflows a float64. Only literals with an exponent or of more than
// 300 characters can overflow (the largest float64 has 309 integer digits),
// so others are skipped without parsing; underflow (1e-400) rounds to zero,
// as every JSON reader does, and is accepted.
func checkNumbers(b []byte) error {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped byte; \u escapes are hex digits, never quotes
			case '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			continue
		}
		if c != '-' && (c < '0' || c > '9') {
			continue
		}
		start, exp := i, false
		for i+1 < len(b) && !isNumberEnd(b[i+1]) {
			i++
			exp = exp || b[i] == 'e' || b[i] == 'E'
		}
		lit := b[start : i+1]
		if !exp && len(lit) <= 300 {
			continue
		}
		if _, err := strconv.ParseFloat(string(lit), 64); err != nil {
			if len(lit) > maxNumberQuote {
				lit = append(lit[:maxNumberQuote:maxNumberQuote], "…"...)
			}
			return fmt.Errorf("number %s: %w", lit, ErrNumberRange)
		}
	}
	return nil
}

// isNumberEnd reports whether c ends a number literal in compact JSON.
func isNumberEnd(c byte) bool { return c == ',' || c == '}' || c == ']' }

// field is one top-level member of a JSON object.
type field struct {
	name  string
	value json.RawMessage
}

// objectFields returns the members of a JSON object in document order. A
// name that appears twice keeps its last value, as encoding/json does.
func objectFields(doc json.RawMessage) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object: starts with %v", tok)
	}
	var fields []field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("object member: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object member name: got %v", tok)
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("object member %q: %w", name, err)
		}
		fields = append(fields, field{name: name, value: value})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("object end: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after object")
	}
	return fields, nil
}

// marshalNoEscape encodes s as a JSON string without HTML escaping, so that
// names round-trip byte for byte.
func marshalNoEscape(s string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Bodies returns the upload's bodies compacted (CompactObject), or an
// error naming the first alias whose body is not a JSON object: what every
// backend checks before it writes.
func (w StateWrite) Bodies() (map[string]json.RawMessage, error) {
	bodies := make(map[string]json.RawMessage, len(w.Aliases))
	for alias, body := range w.Aliases {
		b, err := CompactObject(body)
		if err != nil {
			return nil, fmt.Errorf("alias %q: %w", alias, err)
		}
		bodies[alias] = b
	}
	return bodies, nil
}
