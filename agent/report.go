package agent

import (
	"encoding/json"
	"strconv"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// EncodeReport renders r as indented JSON with plan.Report's field names
// and a trailing newline. plan.Report holds only strings, numbers, bools,
// slices and string maps, which encoding/json cannot fail to encode.
func EncodeReport(r *plan.Report) []byte {
	data, err := json.MarshalIndent(r, "", "  ")
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
		return "hardbake: FAILED step=" + cause.Name + " (" + how + "): " + cause.Error
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
