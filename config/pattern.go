package config

import (
	"strconv"
	"strings"
)

// Patterns that the validator and the JSON Schema share. Each is written in
// the common subset of RE2 (Go's regexp, which the validator uses) and
// ECMA-262 (which JSON Schema validators use): character classes, groups,
// alternation, ?, *, + and {n,m}; no look-around, no back-references, no
// \d or \w (their meaning differs between engines).

// rangePattern returns a pattern (without anchors) matching exactly the
// decimal numbers lo..hi written without a leading zero, so a schema can say
// "1–65535" or "1–600 seconds" inside a string.
func rangePattern(lo, hi int) string {
	parts := rangeParts(lo, hi)
	if len(parts) == 1 {
		return parts[0]
	}
	return "(?:" + strings.Join(parts, "|") + ")"
}

func rangeParts(lo, hi int) []string {
	if lo > hi {
		return nil
	}
	ls, hs := strconv.Itoa(lo), strconv.Itoa(hi)
	if len(ls) < len(hs) { // split where the digit count changes
		top := pow10(len(ls)) - 1
		return append(rangeParts(lo, top), rangeParts(top+1, hi)...)
	}
	return fixedWidth(ls, hs)
}

// fixedWidth matches the digit strings of len(a) from a to b (a <= b).
func fixedWidth(a, b string) []string {
	if a == b {
		return []string{a}
	}
	if a[0] == b[0] {
		var out []string
		for _, s := range fixedWidth(a[1:], b[1:]) {
			out = append(out, a[:1]+s)
		}
		return out
	}
	n := len(a) - 1
	lowFull := strings.Trim(a[1:], "0") == ""  // a is d00…0
	highFull := strings.Trim(b[1:], "9") == "" // b is d99…9
	first, last := a[0], b[0]
	var out []string
	if !lowFull {
		for _, s := range fixedWidth(a[1:], strings.Repeat("9", n)) {
			out = append(out, a[:1]+s)
		}
		first++
	}
	if !highFull {
		last--
	}
	if first <= last {
		class := string(first)
		if last > first {
			class = "[" + string(first) + "-" + string(last) + "]"
		}
		out = append(out, class+strings.Repeat("[0-9]", n))
	}
	if !highFull {
		for _, s := range fixedWidth(strings.Repeat("0", n), b[1:]) {
			out = append(out, b[:1]+s)
		}
	}
	return out
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// durationUnits are the units of fail2ban/sshd durations, in seconds.
var durationUnits = []struct {
	unit string
	secs int
}{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 604800}}

// durationPattern matches exactly the durations parseDuration reads whose
// length is minSecs..maxSecs: for each unit, the counts in range.
func durationPattern(minSecs, maxSecs int) string {
	var alts []string
	for _, u := range durationUnits {
		lo := (minSecs + u.secs - 1) / u.secs
		hi := maxSecs / u.secs
		if lo <= hi {
			alts = append(alts, rangePattern(lo, hi)+u.unit)
		}
	}
	return "^(?:" + strings.Join(alts, "|") + ")$"
}
