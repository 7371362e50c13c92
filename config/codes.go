package config

import (
	"errors"
	"slices"
)

// Code names the check that refused a value. Codes are part of the API:
// hardbaked returns them with every diagnostic and clients match on them,
// so a code is never renamed or reused for a different check, and each
// check has one. The message beside it is for people and may change.
type Code string

// The document: syntax and shape.
const (
	CodeSyntax            Code = "syntax"             // not well-formed YAML or JSON
	CodeEmptyDocument     Code = "empty-document"     // nothing, or only null
	CodeMultipleDocuments Code = "multiple-documents" // a second YAML document
	CodeTooComplex        Code = "too-complex"        // more values than any real profile (alias bombs)
	CodeExplicitTag       Code = "explicit-tag"       // !!bool yes and the like: readers disagree on them
	CodeWrongType         Code = "wrong-type"         // a list, mapping, string, integer or boolean where another is due
	CodeNumberSpelling    Code = "number-spelling"    // a leading zero, 0x, a sign: one spelling per number
	CodeMergeKey          Code = "merge-key"          // YAML's <<
	CodeDuplicateKey      Code = "duplicate-key"
	CodeUnknownKey        Code = "unknown-key"
	CodeRequired          Code = "required"      // a value that must be given is missing
	CodeTooFewItems       Code = "too-few-items" // a list given shorter than its minimum
)

// One value, checked alone. The rule table's entries have one code each
// (ruleCodes); these are the values checked outside it.
const (
	CodeInvalidChoice       Code = "invalid-choice" // not one of an enumeration
	CodeInvalidPort         Code = "invalid-port"   // out of 1–65535, or SSH on 22
	CodeInvalidHostname     Code = "invalid-hostname"
	CodeInvalidLoginName    Code = "invalid-login-name" // shape, or a name the image already has
	CodeInvalidPasswordHash Code = "invalid-password-hash"
	CodeInvalidSSHKey       Code = "invalid-ssh-key"
	CodeInvalidService      Code = "invalid-service" // an order's allow entry: PORT/PROTO
	CodeInvalidInstanceID   Code = "invalid-instance-id"
	CodeInvalidTime         Code = "invalid-time"    // a time of day HH:MM
	CodeInvalidAddress      Code = "invalid-address" // an IP address of the wrong family or shape
)

// Values that contradict each other; the message names both fields.
const (
	CodeDuplicateItem     Code = "duplicate-item"     // the same group, service, provider or port twice
	CodeNameConflict      Code = "name-conflict"      // the admin's name is also one of its groups
	CodePortConflict      Code = "port-conflict"      // the SSH port is also a service's port
	CodeWidensRestriction Code = "widens-restriction" // an order opening a source-restricted service to all
	CodeIgnoredField      Code = "ignored-field"      // a value the rest of the input makes meaningless
	CodeMeasureRequired   Code = "measure-required"   // switching off a measure hardening depends on
)

// The provider edge (package edge checks these; the codes are its Issue.Code).
const (
	CodeOverLimit      Code = "over-limit"      // more rules than the provider's firewall takes
	CodeIPv6Unfiltered Code = "ipv6-unfiltered" // an IPv6 source where the edge filters IPv4 only
)

// ruleCodes gives every entry of the rule table (fieldrules.go) its code.
// It is a table of its own, not derived from the entry's name, so that
// renaming a rule in Go cannot change what API clients match on.
var ruleCodes = map[string]Code{
	"profileName":  "invalid-profile-name",
	"oneLine":      "invalid-one-line",
	"reboot":       "invalid-reboot-time",
	"mirrorURL":    "invalid-mirror-url",
	"suite":        "invalid-suite",
	"component":    "invalid-component",
	"armoredKey":   "invalid-openpgp-key",
	"maxAuthTries": "invalid-max-auth-tries",
	"loginGrace":   "invalid-login-grace",
	"maxSessions":  "invalid-max-sessions",
	"idleLogout":   "invalid-idle-logout",
	"banner":       "invalid-banner",
	"loginName":    CodeInvalidLoginName,
	"groupName":    "invalid-group-name",
	"shell":        "invalid-shell",
	"port":         CodeInvalidPort,
	"cidr":         "invalid-cidr",
	"f2bDuration":  "invalid-duration",
	"maxretry":     "invalid-maxretry",
	"package":      "invalid-package",
}

// Codes lists every code a diagnostic can carry, sorted, for documentation
// and for the test that holds each check to a listed code.
func Codes() []Code {
	all := []Code{
		CodeSyntax, CodeEmptyDocument, CodeMultipleDocuments, CodeTooComplex, CodeExplicitTag,
		CodeWrongType, CodeNumberSpelling, CodeMergeKey, CodeDuplicateKey, CodeUnknownKey,
		CodeRequired, CodeTooFewItems,
		CodeInvalidChoice, CodeInvalidPort, CodeInvalidHostname, CodeInvalidLoginName,
		CodeInvalidPasswordHash, CodeInvalidSSHKey, CodeInvalidService, CodeInvalidInstanceID, CodeInvalidTime, CodeInvalidAddress,
		CodeDuplicateItem, CodeNameConflict, CodePortConflict, CodeWidensRestriction, CodeIgnoredField,
		CodeMeasureRequired, CodeOverLimit, CodeIPv6Unfiltered,
	}
	for _, c := range ruleCodes {
		if !slices.Contains(all, c) {
			all = append(all, c)
		}
	}
	slices.Sort(all)
	return all
}

func ruleCode(name string) Code {
	c, ok := ruleCodes[name]
	if !ok {
		panic("config: rule " + name + " has no code in ruleCodes")
	}
	return c
}

// codedError is an error that knows which check it comes from; decoders of
// special values (a port that may be "random") return it.
type codedError struct {
	code Code
	msg  string
}

func (e *codedError) Error() string { return e.msg }

// codeOf returns the code an error carries, or CodeWrongType for an error
// of a value decoder that did not say (a value it could not read at all).
func codeOf(err error) Code {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return CodeWrongType
}
