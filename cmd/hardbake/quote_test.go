package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
)

// TestArgumentsNeverPrintRaw: a flag or argument with terminal escapes or a
// newline comes back escaped in the message, on one line, with exit 2.
func TestArgumentsNeverPrintRaw(t *testing.T) {
	for _, args := range [][]string{
		{"render", "--bogus-\x1b[2J\nhardbake: wrote out"},
		{"render", "--ssh-port", "22\x1b[31m"},
		{"render", "--network-config=\x1b[31m"},
		{"frobnicate\x1b[2J"},
		{"render", "-o", "out", "--order", "no\x1b[2J\nhardbake: wrote out"},
		{"render", "-o", "out", "--hostname", "h", "--ssh-key-file", "no\x1b[2J\nhardbake: wrote out"},
		{"validate", "no\x1b[2J\nhardbake: wrote out"},
		{"render", "-o", "out", "--hostname", "a\x1b[2J\nhardbake: wrote out", "--ssh-key", "x"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(args, strings.NewReader(""), &stdout, &stderr)
		if code != exitInput {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitInput, stderr.String())
		}
		out := strings.TrimSuffix(stderr.String(), "\n")
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasPrefix(line, "hardbake: ") || strings.HasPrefix(line, "hardbake: wrote") {
				t.Errorf("%q: forged or unprefixed line %q", args, line)
			}
			if strings.ContainsFunc(line, func(r rune) bool { return !unicode.IsPrint(r) }) {
				t.Errorf("%q: raw non-printable text in %q", args, line)
			}
		}
	}
}
