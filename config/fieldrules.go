package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A rule constrains one value (or each item of a list). The validator runs
// check; the JSON Schema generator emits schema. Both come from this one
// table, which struct fields name with a `rule:"…"` tag (an `enum:"…"` tag
// makes its own rule), so the schema cannot say less or more than the CLI
// without TestSchemaAgreesWithValidator and TestRuleSchemas noticing.
//
// What JSON Schema cannot say is left to check alone and listed in
// schemaCannotExpress, which the agreement test holds to: rules across
// fields, an OpenPGP key's content, a CIDR's host bits and IPv6 syntax, and
// number spellings (JSON Schema's data model has one 3 for 3 and 3.0).
type rule struct {
	code   Code // set from the rule's name in the table (or invalid-choice for an enum)
	schema map[string]any
	str    func(string) string // for string values
	num    func(int) string    // for integer values
}

var schemaCannotExpress = []string{
	"rules across fields (a service on the SSH port, duplicate services, the sshd jail while fail2ban is on, the admin in its own groups)",
	"whether updates.mirror.key parses as OpenPGP",
	"host bits in a CIDR source, and IPv6 address syntax",
	"number spellings JSON's data model does not keep apart (3.0 for 3)",
}

func intRange(lo, hi int) rule {
	return rule{
		schema: map[string]any{"type": "integer", "minimum": lo, "maximum": hi},
		num: func(n int) string {
			if n < lo || n > hi {
				return fmt.Sprintf("must be %d–%d, not %d", lo, hi, n)
			}
			return ""
		},
	}
}

func durationRule(min, max time.Duration) rule {
	return rule{
		schema: map[string]any{"type": "string", "pattern": durationPattern(int(min/time.Second), int(max/time.Second))},
		str:    func(s string) string { return checkDurationRange(s, min, max) },
	}
}

func patternRule(p boundedPattern, check func(string) string) rule {
	return rule{schema: p.schema(), str: check}
}

func enumRule(values []string) rule {
	var want string
	switch len(values) {
	case 1:
		want = strconv.Quote(values[0])
	default:
		want = strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
	}
	return rule{
		code:   CodeInvalidChoice,
		schema: map[string]any{"enum": values},
		str: func(s string) string {
			if !slices.Contains(values, s) {
				return fmt.Sprintf("must be %s, not %q", want, s)
			}
			return ""
		},
	}
}

func notEnum(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func reservedList() []string {
	out := make([]string, 0, len(reservedUsers))
	for k := range reservedUsers {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func ipv4Pattern() string {
	o := rangePattern(0, 255)
	return o + `\.` + o + `\.` + o + `\.` + o
}

// mirrorURLPattern is checkURL's grammar: lower-case http(s), a host (IPv4,
// or a hostname whose last label starts with a letter), an optional port
// 1–65535, a path of unreserved characters and %XX escapes.
func mirrorURLPattern() string {
	label := `[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?`
	top := `[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?`
	host := `(?:` + ipv4Pattern() + `|(?:` + label + `\.)*` + top + `)`
	path := `(?:/(?:[A-Za-z0-9._~!&()*+,;=:/-]|%[0-9A-Fa-f]{2})*)?`
	return `^https?://` + host + `(?::` + rangePattern(1, 65535) + `)?` + path + `$`
}

// fieldRules are the rules fields name in their `rule` tag, built on first
// use: building the patterns at every start of the CLI would cost each run
// (hardbake version included) about a millisecond.
var fieldRules = sync.OnceValue(func() map[string]rule {
	rules := map[string]rule{
		"profileName": patternRule(profileRE, func(s string) string {
			if !profileRE.MatchString(s) {
				return fmt.Sprintf("%q must be 1–63 lower-case letters, digits and inner hyphens", s)
			}
			return ""
		}),
		"oneLine": {
			schema: map[string]any{"type": "string", "pattern": oneLineRE.re.String(), "maxLength": 200},
			str: func(s string) string {
				if utf8Len(s) > 200 || !oneLineRE.MatchString(s) {
					return "must be one line of at most 200 characters"
				}
				return ""
			},
		},
		"reboot": patternRule(rebootRE, func(s string) string {
			if !rebootRE.MatchString(s) {
				return fmt.Sprintf("%q must be a time HH:MM (00:00–23:59) or none", s)
			}
			return ""
		}),
		"mirrorURL": {
			schema: map[string]any{"type": "string", "pattern": mirrorURLPattern(), "maxLength": maxMirrorURL},
			str:    checkURL,
		},
		"suite": patternRule(suiteRE, func(s string) string {
			if !suiteRE.MatchString(s) {
				return fmt.Sprintf("%q is not a suite name (e.g. $RELEASE, $RELEASE-updates, bookworm)", s)
			}
			return ""
		}),
		"component": patternRule(componentRE, func(s string) string {
			if !componentRE.MatchString(s) {
				return fmt.Sprintf("%q is not a component name (e.g. main)", s)
			}
			return ""
		}),
		"armoredKey": {
			schema: map[string]any{"type": "string", "pattern": armorShapeRE.String(), "not": map[string]any{"pattern": armorTwoBlocks}},
			str:    checkArmoredKey,
		},
		"maxAuthTries": intRange(1, 10),
		"loginGrace":   durationRule(time.Second, 10*time.Minute),
		"maxSessions":  intRange(1, 10),
		"idleLogout":   durationRule(time.Minute, 24*time.Hour),
		"banner": {
			schema: map[string]any{"type": "string", "pattern": bannerRE.re.String(), "maxLength": 500},
			str: func(s string) string {
				if utf8Len(s) > 500 || !bannerRE.MatchString(s) {
					return "must be one line of at most 500 characters without backslashes (getty reads them as escapes)"
				}
				return ""
			},
		},
		"loginName": {
			schema: map[string]any{"type": "string", "pattern": userNameRE.re.String(), "minLength": 1, "maxLength": 32,
				"not": map[string]any{"anyOf": []any{
					map[string]any{"enum": reservedList()},
					map[string]any{"pattern": "^(?:" + strings.Join(reservedPrefixes, "|") + ")"},
				}}},
			str: checkUserName,
		},
		"groupName": patternRule(userNameRE, checkGroupName),
		"shell": {
			schema: map[string]any{"enum": loginShells},
			str:    checkShell,
		},
		"port": intRange(1, 65535),
		"cidr": {
			schema: map[string]any{"type": "string", "anyOf": []any{
				map[string]any{"pattern": "^" + ipv4Pattern() + "/" + rangePattern(0, 32) + "$"},
				map[string]any{"pattern": "^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*/" + rangePattern(0, 128) + "$"},
			}},
			str: func(s string) string { _, reason := checkCIDR(s); return reason },
		},
		"f2bDuration": durationRule(time.Second, 365*24*time.Hour),
		"maxretry":    intRange(1, 100),
		"package": {
			schema: map[string]any{"type": "string", "pattern": packageRE.re.String(), "minLength": packageRE.min, "maxLength": packageRE.max,
				"not": map[string]any{"enum": notEnum(takeoverPackages)}},
			str: checkPackage,
		},
	}
	for name, r := range rules {
		r.code = ruleCode(name)
		rules[name] = r
	}
	return rules
})

func utf8Len(s string) int { return len([]rune(s)) }

// fieldRule returns the rule of a struct field, if it has one.
func fieldRule(f reflect.StructField) (rule, bool) {
	if name := f.Tag.Get("rule"); name != "" {
		r, ok := fieldRules()[name]
		if !ok {
			panic("config: unknown rule " + name)
		}
		return r, true
	}
	if enum := f.Tag.Get("enum"); enum != "" {
		return enumRule(strings.Split(enum, ",")), true
	}
	return rule{}, false
}

// applyRules walks a decoded document and checks every field that has a
// rule. A value left at its zero because it was absent (or null) is not
// checked unless the field is required: its default, or its parent's
// setting, applies. Anything given, an empty string included, is checked.
func applyRules(e *errList, path string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			applyRules(e, path, v.Elem())
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			fp := join(path, name)
			fv := v.Field(i)
			r, ok := fieldRule(f)
			if !ok {
				applyRules(e, fp, fv)
				continue
			}
			if fv.Kind() == reflect.Slice {
				if n, _ := strconv.Atoi(f.Tag.Get("minItems")); n > 0 && fv.Len() < n && e.src.given(fp) {
					e.add(CodeTooFewItems, fp, "must list at least %d item(s); leave it out for the default", n)
				}
				for j := range fv.Len() {
					checkValue(e, fmt.Sprintf("%s[%d]", fp, j), r, fv.Index(j))
				}
				continue
			}
			if fv.IsZero() && f.Tag.Get("required") != "true" && !e.src.given(fp) {
				continue
			}
			checkValue(e, fp, r, fv)
		}
	case reflect.Slice:
		for j := range v.Len() {
			applyRules(e, fmt.Sprintf("%s[%d]", path, j), v.Index(j))
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			applyRules(e, join(path, k.String()), v.MapIndex(k))
		}
	}
}

func checkValue(e *errList, path string, r rule, v reflect.Value) {
	var reason string
	switch v.Kind() {
	case reflect.String:
		reason = r.str(v.String())
	case reflect.Int:
		reason = r.num(int(v.Int()))
	default:
		panic("config: rule on a " + v.Kind().String() + " at " + path)
	}
	if reason != "" {
		e.add(r.code, path, "%s", reason)
	}
}
