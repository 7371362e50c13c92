package agent

import (
	"strconv"
	"strings"

	"hardbake.dev/hardbake/agent/internal/jsonv"
	"hardbake.dev/hardbake/plan"
)

// EncodeReport renders r as indented JSON with the field names of
// plan.Report's json tags (a test holds the two together).
func EncodeReport(r *plan.Report) []byte {
	var w jsonv.Writer
	w.Open('{')
	w.Key("plan_version")
	w.Int(int64(r.PlanVersion))
	for _, kv := range [][2]string{
		{"plan_digest", r.PlanDigest}, {"profile", r.Profile}, {"instance_id", r.InstanceID},
		{"agent_version", r.AgentVersion}, {"stage", r.Stage}, {"result", r.Result},
	} {
		w.Key(kv[0])
		w.String(kv[1])
	}
	w.Key("steps")
	writeSteps(&w, r.Steps)

	w.Key("ssh")
	w.Open('{')
	w.Key("activation")
	w.String(r.SSH.Activation)
	w.Key("port")
	w.Int(int64(r.SSH.Port))
	w.Key("effective")
	writeMap(&w, r.SSH.Effective)
	if r.SSH.Banner != "" {
		w.Key("banner")
		w.String(r.SSH.Banner)
	}
	w.Key("port22_open")
	w.Bool(r.SSH.Port22Open)
	w.Close('}')

	w.Key("firewall")
	w.Open('{')
	w.Key("backend")
	w.String(r.Firewall.Backend)
	w.Key("input_policy")
	w.String(r.Firewall.InputPolicy)
	w.Key("allowed_v4")
	writePorts(&w, r.Firewall.AllowedV4)
	w.Key("allowed_v6")
	writePorts(&w, r.Firewall.AllowedV6)
	w.Close('}')

	w.Key("fail2ban")
	w.Open('{')
	w.Key("state")
	w.String(r.Fail2ban.State)
	w.Key("jails")
	writeMap(&w, r.Fail2ban.Jails)
	w.Close('}')

	w.Key("updates")
	w.Open('{')
	w.Key("state")
	w.String(r.Updates.State)
	w.Key("installed")
	w.Bool(r.Updates.Installed)
	w.Key("periodic")
	w.String(r.Updates.Periodic)
	w.Key("timer_enabled")
	w.Bool(r.Updates.TimerEnabled)
	w.Close('}')

	w.Key("host_keys")
	if r.HostKeys == nil {
		w.Null()
	} else {
		w.Open('[')
		for _, k := range r.HostKeys {
			w.Open('{')
			w.Key("type")
			w.String(k.Type)
			w.Key("fingerprint")
			w.String(k.Fingerprint)
			w.Close('}')
		}
		w.Close(']')
	}
	w.Close('}')
	return w.Bytes()
}

func writeSteps(w *jsonv.Writer, steps []plan.Step) {
	if steps == nil {
		w.Null()
		return
	}
	w.Open('[')
	for _, s := range steps {
		w.Open('{')
		w.Key("name")
		w.String(s.Name)
		w.Key("stage")
		w.String(s.Stage)
		w.Key("status")
		w.String(s.Status)
		if s.Error != "" {
			w.Key("error")
			w.String(s.Error)
		}
		w.Key("uptime_s")
		w.Float(s.Uptime)
		w.Close('}')
	}
	w.Close(']')
}

func writeMap(w *jsonv.Writer, m map[string]string) {
	if m == nil {
		w.Null()
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	w.Open('{')
	for _, k := range keys {
		w.Key(k)
		w.String(m[k])
	}
	w.Close('}')
}

func writePorts(w *jsonv.Writer, ports []plan.Port) {
	if ports == nil {
		w.Null()
		return
	}
	w.Open('[')
	for _, p := range ports {
		w.Open('{')
		w.Key("port")
		w.Int(int64(p.Port))
		w.Key("proto")
		w.String(p.Proto)
		w.Close('}')
	}
	w.Close(']')
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
