package edge

import "strings"

// Issue is one problem with the inputs that the edge cannot carry: which
// value (document and key path) and why. Front ends turn Issues into their
// own input errors (exit code 2); edge/fromconfig does it for package config.
type Issue struct {
	Origin Origin
	Code   string // the check, in package config's codes (config.Code)
	Reason string
}

func (i Issue) Error() string { return i.Origin.String() + ": " + i.Reason }

// InputError is every Issue of one build. It is the error type that means
// "bad input, exit 2, nothing written".
type InputError struct {
	Issues []Issue
}

func (e *InputError) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.Error()
	}
	return strings.Join(lines, "\n")
}

type issues []Issue

func (l *issues) add(o Origin, code, reason string) {
	*l = append(*l, Issue{Origin: o, Code: code, Reason: reason})
}

// Issue codes: the same strings as package config's codes of the same
// names, which edge cannot import (config imports edge).
const (
	codeInvalidChoice  = "invalid-choice"
	codeInvalidPort    = "invalid-port"
	codeInvalidTime    = "invalid-time"
	codeInvalidAddress = "invalid-address"
	codeDuplicateItem  = "duplicate-item"
	codeRequired       = "required"
	codeIgnoredField   = "ignored-field"
	codeOverLimit      = "over-limit"
	codeIPv6Unfiltered = "ipv6-unfiltered"
)

func (l issues) err() error {
	if len(l) == 0 {
		return nil
	}
	return &InputError{Issues: l}
}
