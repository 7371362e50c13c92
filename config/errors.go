package config

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a 1-based line and column in a source file. The zero Pos means the
// value came from a flag or a default rather than from a file.
type Pos struct {
	Line, Col int
}

// FieldError is one problem with one input value: where it is (file and
// position, or the flag that set it), which field (its key path, e.g.
// "ssh.port"), and why.
type FieldError struct {
	File   string // file name, or a flag such as "--ssh-port"
	Pos    Pos
	Path   string // key path, e.g. "firewall.services[1].sources[0]"
	Code   Code   // which check refused the value (codes.go)
	Reason string
}

// Error formats the problem on one line. Every part can hold text from the
// input (a file name, a key, a value), so each is escaped: no input can
// print a control character, a terminal escape or a second line.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(escapeNonPrintable(e.File))
		if e.Pos.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", e.Pos.Line, e.Pos.Col)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(escapeNonPrintable(e.Path))
		b.WriteString(": ")
	}
	b.WriteString(escapeNonPrintable(e.Reason))
	return b.String()
}

// InputError collects every problem found in the inputs, so one run reports
// all of them. It is the error type front ends map to exit code 2.
type InputError struct {
	Errs []*FieldError
}

func (e *InputError) Error() string {
	lines := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// errList accumulates FieldErrors for one source.
type errList struct {
	src  *Source
	errs []*FieldError
}

func (l *errList) add(code Code, path, format string, args ...any) {
	fe := &FieldError{Path: path, Code: code, Reason: fmt.Sprintf(format, args...)}
	if l.src != nil {
		fe.File = l.src.File
		fe.Pos = l.src.Pos(path)
		if f, ok := l.src.flags[path]; ok {
			fe.File, fe.Pos = f, Pos{}
		}
	}
	l.errs = append(l.errs, fe)
}

// addAt adds a problem at pos, which need not be the position recorded for
// path (a duplicate key, a second document).
func (l *errList) addAt(pos Pos, code Code, path, format string, args ...any) {
	fe := &FieldError{Path: path, Pos: pos, Code: code, Reason: fmt.Sprintf(format, args...)}
	if l.src != nil {
		fe.File = l.src.File
	}
	l.errs = append(l.errs, fe)
}

// err returns nil or an *InputError with the problems sorted by position,
// which is the order a reader goes through the file.
func (l *errList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i], l.errs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		return a.Pos.Col < b.Pos.Col
	})
	return &InputError{Errs: l.errs}
}

// Join merges input errors from several sources into one InputError; any
// other error is returned as is.
func Join(errs ...error) error {
	var all []*FieldError
	for _, err := range errs {
		if err == nil {
			continue
		}
		ie, ok := err.(*InputError)
		if !ok {
			return err
		}
		all = append(all, ie.Errs...)
	}
	if len(all) == 0 {
		return nil
	}
	return &InputError{Errs: all}
}
