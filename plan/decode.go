package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// Decode parses a plan strictly. It is the one decoder both sides use (the
// generator's render.DecodePlan and the agent), so a plan means the same to
// both: unknown fields, duplicate keys (compared the way encoding/json
// matches them to fields, case-insensitively), trailing data, another
// version and an SSH port out of range are all errors.
func Decode(data []byte) (*Plan, error) {
	if err := StrictJSON(data); err != nil {
		return nil, fmt.Errorf("decode plan: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode plan: %w", err)
	}
	if p.Version != Version {
		return nil, fmt.Errorf("plan version %d is not supported (want %d)", p.Version, Version)
	}
	if p.SSH.Port < 1 || p.SSH.Port > 65535 {
		return nil, fmt.Errorf("plan: ssh.port %d out of range", p.SSH.Port)
	}
	return &p, nil
}

// StrictJSON checks that data is exactly one JSON value with no object
// holding the same key twice. encoding/json keeps the last of duplicate
// keys (and reports a type error for an earlier one only after the fact),
// so a document with duplicates could mean one thing to a reader that keeps
// the first: refusing them leaves one meaning. Keys are compared with
// case folding because that is how encoding/json maps them to fields.
func StrictJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := strictValue(dec, "$"); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the JSON value at offset %d", dec.InputOffset())
	}
	return nil
}

// foldKey maps every rune to the smallest rune of its case-folding orbit:
// two keys are strings.EqualFold exactly when their foldKeys are equal.
func foldKey(k string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, k)
}

func strictValue(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			k, _ := kt.(string)
			if f := foldKey(k); seen[f] {
				return fmt.Errorf("%s: duplicate key %s", path, strconv.Quote(k))
			} else {
				seen[f] = true
			}
			if err := strictValue(dec, path+"."+k); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := strictValue(dec, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
