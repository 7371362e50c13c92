package agent

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// EncodeReport renders r as indented JSON with plan.Report's field names
// and a trailing newline. plan.Report holds only strings, numbers, bools,
// slices and string maps; the one thing encoding/json refuses, a
// non-finite float, is written as 0 (an uptime the agent could not read).
func EncodeReport(r *plan.Report) []byte {
	c := *r
	c.Steps = slices.Clone(r.Steps)
	for i := range c.Steps {
		if u := c.Steps[i].Uptime; math.IsNaN(u) || math.IsInf(u, 0) {
			c.Steps[i].Uptime = 0
		}
	}
	data, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		panic("encode report: " + err.Error())
	}
	return append(data, '\n')
}

// Summary is the one line for the console and the boot log.
func Summary(r *plan.Report) string {
	if r.Result == plan.ResultFailed {
		// Name the cause. A step that failed outright comes first; among
		// rolled-back steps the firewall comes last, because it is rolled
		// back when SSH falls back to a port its ruleset would block.
		rank := func(s plan.Step) int {
			switch {
			case s.Status == plan.StatusFailed:
				return 0
			case s.Status == plan.StatusRolledBack && s.Name != "firewall":
				return 1
			case s.Status == plan.StatusRolledBack:
				return 2
			}
			return 3
		}
		var cause *plan.Step
		for i := range r.Steps {
			if rank(r.Steps[i]) < 3 && (cause == nil || rank(r.Steps[i]) < rank(*cause)) {
				cause = &r.Steps[i]
			}
		}
		if cause == nil {
			return "hardbake: FAILED"
		}
		how := "failed"
		if cause.Status == plan.StatusRolledBack {
			how = "rolled back"
		}
		return "hardbake: FAILED step=" + oneLine(cause.Name) + " (" + how + "): " + oneLine(cause.Error)
	}
	var b strings.Builder
	switch r.Result {
	case plan.ResultPending:
		b.WriteString("hardbake: early stage done")
	default:
		b.WriteString("hardbake: " + r.Result)
	}
	b.WriteString(" ssh=" + strconv.Itoa(r.SSH.Port))
	fw := r.Firewall.Backend
	if fw == "" {
		fw = "none"
	}
	b.WriteString(" firewall=" + fw)
	for _, s := range r.Steps {
		if s.Status == plan.StatusWaiting && s.Stage == r.Stage {
			b.WriteString(" waiting=" + s.Name)
		}
	}
	if r.Fail2ban.State != "" {
		b.WriteString(" fail2ban=" + r.Fail2ban.State)
	}
	if r.Updates.State != "" {
		b.WriteString(" updates=" + r.Updates.State)
	}
	return b.String()
}

// oneLine escapes control characters (newlines, terminal escapes) so that
// text from tools or input can neither break the console line nor forge
// a second one.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029
}
