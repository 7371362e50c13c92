package agent

import "testing"

// The error names the line that says why a command failed: sudo's warning
// about an unresolvable hostname comes first and is skipped.
func TestExitErrorMessage(t *testing.T) {
	for _, tc := range []struct{ stderr, want string }{
		{"", "sudo: exit status 1"},
		{"sudo: a password is required\n", "sudo: exit status 1: sudo: a password is required"},
		{"sudo: unable to resolve host vm: Name or service not known\nsudo: a password is required\n", "sudo: exit status 1: sudo: a password is required"},
		{"first\nsecond\n", "sudo: exit status 1: first …"},
	} {
		if got := (&ExitError{Cmd: "sudo", Code: 1, Stderr: tc.stderr}).Error(); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.stderr, got, tc.want)
		}
	}
}
