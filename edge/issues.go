package edge

import "strings"

// Issue is one problem with the inputs that the edge cannot carry: which
// value (document and key path) and why. Front ends turn Issues into their
// own input errors (exit code 2); edge/fromconfig does it for package config.
type Issue struct {
	Origin Origin
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

func (l *issues) add(o Origin, reason string) { *l = append(*l, Issue{Origin: o, Reason: reason}) }

func (l issues) err() error {
	if len(l) == 0 {
		return nil
	}
	return &InputError{Issues: l}
}
