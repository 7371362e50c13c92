package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// One meaning per number and per boolean: every number hardbake reads, from
// a flag, YAML or JSON, goes through parseDecimal, and every boolean must be
// spelled true or false. Spellings that mean different things to different
// readers (02222 is octal to strconv.ParseInt(s, 0, …) and to YAML 1.1 but
// decimal to JSON; 0x10, 0o17, +5 and 1_000 are numbers to some readers and
// strings to others; yes/on are booleans to YAML 1.1 readers such as
// cloud-init's PyYAML and strings to YAML 1.2) are refused, never guessed.

// maxDecimalDigits bounds the numbers parseDecimal reads: every number in
// the inputs is a port, a count or a duration well below 10^9.
const maxDecimalDigits = 9

// parseDecimal reads a non-negative integer written in plain decimal: ASCII
// digits only, no sign, no base prefix, no separators and no leading zero
// (except "0" itself).
func parseDecimal(s string) (int, string) {
	switch {
	case s == "":
		return 0, "is empty; want a decimal number"
	case strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }):
		return 0, fmt.Sprintf("%s is not a plain decimal number (digits only: no sign, no 0x/0o prefix, no _ or spaces)", strconv.Quote(s))
	case len(s) > 1 && s[0] == '0':
		return 0, fmt.Sprintf("%s has a leading zero, which some readers take as octal; write it without", strconv.Quote(s))
	case len(s) > maxDecimalDigits:
		return 0, fmt.Sprintf("%s is out of range", strconv.Quote(s))
	}
	n, err := strconv.Atoi(s)
	if err != nil { // unreachable after the checks above; kept so no error is lost
		return 0, fmt.Sprintf("%s: %v", strconv.Quote(s), err)
	}
	return n, ""
}

// ParseDecimal is parseDecimal for front ends: a numeric flag (such as
// hardbake iso --max-user-data) must be read by it, not by pflag's Int,
// which takes 010 as octal 8 and 0x10 as 16.
func ParseDecimal(s string) (int, string) { return parseDecimal(s) }

// ParsePort reads a port from any input: decimal 1–65535 or the word
// random, spelled exactly so. 0 is an error here as everywhere: it never
// means "random".
func ParsePort(s string) (PortSpec, string) {
	if s == "random" {
		return PortSpec{Random: true}, ""
	}
	n, reason := parseDecimal(s)
	if reason != "" {
		return PortSpec{}, "must be 1–65535 or \"random\": " + reason
	}
	if n < 1 || n > 65535 {
		return PortSpec{}, fmt.Sprintf("must be 1–65535 or \"random\", not %d", n)
	}
	return PortSpec{Value: n}, ""
}

// ParseBool reads a boolean flag value: true or false, nothing else (not
// 1/0, t/f, yes/no, on/off, True).
func ParseBool(s string) (bool, string) {
	switch s {
	case "true":
		return true, ""
	case "false":
		return false, ""
	}
	return false, fmt.Sprintf("%s is not a boolean: write true or false", strconv.Quote(s))
}

// Quote returns s as a Go string literal when it holds anything other than
// printable characters (control characters, terminal escapes, line or
// bidirectional-override characters), else s as is. Every input-derived
// text in a message goes through it or through %q, so no input can forge a
// line of output or carry a terminal escape.
func Quote(s string) string {
	if strings.ContainsFunc(s, notPrintable) {
		return strconv.Quote(s)
	}
	return s
}

// notPrintable also catches invalid UTF-8, which ranging over a string
// yields as utf8.RuneError.
func notPrintable(r rune) bool {
	return !unicode.IsPrint(r) || r == utf8.RuneError
}

// Escape is escapeNonPrintable for front ends: messages that carry text
// from flags or arguments (an unknown flag's name) go through it.
func Escape(s string) string { return escapeNonPrintable(s) }

// escapeNonPrintable rewrites every non-printable rune of s as a Go escape
// (\x1b, \n, \u202e), keeping the rest as is: the last line of defence in
// FieldError.Error for texts that were built from input.
func escapeNonPrintable(s string) string {
	if !strings.ContainsFunc(s, notPrintable) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case notPrintable(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
