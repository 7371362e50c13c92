// Package stamp is the agent's version as it sits in the binary: set at
// build time with -X 'main.version=[hardbake-version:VERSION]', so a reader
// finds it without running the binary (the CLI on an amd64 host reports
// the arm64 agent's version too), and the agent prints it bare.
package stamp

import "bytes"

const (
	prefix = "[hardbake-version:"
	suffix = "]"
	// maxLen bounds a version, so a stray prefix in other data cannot make
	// Find read far.
	maxLen = 128
)

// Make returns the stamp for version, the value to give -X.
func Make(version string) string { return prefix + version + suffix }

// Version returns the bare version of a stamp: "dev" for an unstamped
// build (the variable left empty), s itself for a plain -X value. It
// compares only the brackets and strips the prefix by its length, so the
// prefix's text never becomes data in the agent: the stamp is then the
// only match Find can meet there.
func Version(s string) string {
	switch {
	case s == "":
		return "dev"
	case len(s) > len(prefix)+len(suffix) && s[0] == '[' && s[len(s)-1] == ']':
		return s[len(prefix) : len(s)-len(suffix)]
	}
	return s
}

// Find returns the first well-formed version stamped into a binary's
// bytes.
func Find(binary []byte) (string, bool) {
	for {
		i := bytes.Index(binary, []byte(prefix))
		if i < 0 {
			return "", false
		}
		binary = binary[i+len(prefix):]
		if v, ok := stampAt(binary); ok {
			return v, true
		}
	}
}

// stampAt reads the version at the start of rest, up to the suffix.
func stampAt(rest []byte) (string, bool) {
	if len(rest) > maxLen+len(suffix) {
		rest = rest[:maxLen+len(suffix)]
	}
	j := bytes.Index(rest, []byte(suffix))
	if j <= 0 {
		return "", false
	}
	v := rest[:j]
	for _, c := range v {
		if c < '!' || c > '~' {
			return "", false
		}
	}
	return string(v), true
}
