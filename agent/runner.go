package agent

import (
	"fmt"
	"strings"
)

// Runner runs programs on the machine. The real one forks; tests script it.
type Runner interface {
	// Run runs name with args and returns its stdout. A non-zero exit is
	// an *ExitError carrying stderr.
	Run(name string, args ...string) ([]byte, error)
	// LookPath reports where name is installed, or an error when it is not.
	LookPath(name string) (string, error)
}

// ExitError is a command that ran and failed.
type ExitError struct {
	Cmd    string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	// sudo warns first when the machine's own hostname does not resolve
	// (common before cloud-init has written /etc/hosts); the line that
	// says why the command failed comes after it.
	for strings.HasPrefix(msg, "sudo: unable to resolve host ") {
		_, rest, _ := strings.Cut(msg, "\n")
		msg = strings.TrimSpace(rest)
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] + " …"
	}
	if msg == "" {
		return fmt.Sprintf("%s: exit status %d", e.Cmd, e.Code)
	}
	return fmt.Sprintf("%s: exit status %d: %s", e.Cmd, e.Code, msg)
}

// has reports whether a program is installed.
func has(r Runner, name string) bool {
	_, err := r.LookPath(name)
	return err == nil
}

// runString runs a command and returns its trimmed stdout.
func runString(r Runner, name string, args ...string) (string, error) {
	out, err := r.Run(name, args...)
	return strings.TrimSpace(string(out)), err
}
