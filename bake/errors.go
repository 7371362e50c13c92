// Package bake is hardbake's one path from a profile and an order to a
// seed: resolving the order (with overrides), finding and checking the
// agent, rendering, choosing the seed's files, building the image in
// memory and writing outputs without destroying anything. The CLI
// (cmd/hardbake) and the service (cmd/hardbaked) both call it, so both give
// the same answers and the same errors for the same input.
//
// bake is pure Go (no cgo) and keeps no global state.
package bake

// InputError is a refusal caused by the caller's input (exit code 2 in the
// CLI, a 4xx in the service): Field names what is at fault the way the CLI
// spells it ("--agent-binary", "-o"), Reason says why.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Reason }

func inputErr(field, reason string) error { return &InputError{Field: field, Reason: reason} }
