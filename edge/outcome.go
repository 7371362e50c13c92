package edge

import "strings"

// Outcome is what one apply did at a provider, stored on the order and
// shown in its status. It records every step in order, so a run that failed
// half way says what was applied; a retry reconciles from the provider's
// state, never from the outcome, so it completes without duplicates.
// An Outcome never holds a credential.
type Outcome struct {
	Provider string `json:"provider"`
	Target   string `json:"target"` // the IP, firewall name or VPS service name
	Steps    []Step `json:"steps"`
	// Complete: every step succeeded and the provider's state matches the plan.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
}

// Step is one change (or check) made at the provider.
type Step struct {
	Action string `json:"action"` // e.g. "create rule", "delete rule", "enable firewall"
	Object string `json:"object"` // e.g. "rule 4 permit tcp port 50022"
	Result string `json:"result"` // done, unchanged or failed
}

// Step results.
const (
	ResultDone      = "done"
	ResultUnchanged = "unchanged"
	ResultFailed    = "failed"
)

// Add records a step.
func (o *Outcome) Add(action, object, result string) {
	o.Steps = append(o.Steps, Step{Action: action, Object: object, Result: result})
}

// Fail records err as the outcome's error and returns it.
func (o *Outcome) Fail(err error) error {
	o.Complete = false
	o.Error = err.Error()
	return err
}

// Redactor replaces credentials in text. Clients pass every error they
// return and every log line through it, so a provider that echoes a
// credential back (or a wrapped transport error) cannot leak it.
type Redactor struct{ secrets []string }

// NewRedactor redacts the given secrets (empty ones are ignored).
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{}
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// String returns s with every secret replaced by [redacted].
func (r *Redactor) String(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return s
}

// Error returns err with its message redacted; nil stays nil. The result
// still matches the original with errors.Is/As.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := r.String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Unwrap lets errors.Is/As see the cause; its text is never shown.
func (e *redactedError) Unwrap() error { return e.err }
