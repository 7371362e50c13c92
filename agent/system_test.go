package agent

import (
	"encoding/json"
	"strings"
	"testing"

	"hardbake.dev/hardbake/plan"
)

func TestSetKey(t *testing.T) {
	cases := []struct {
		name, in string
		kv       [][2]string
		want     string
	}{
		{"replace keeps comments and order",
			"# UMASK is the default\nMAIL_DIR /var/mail\nUMASK\t\t022\nUSERGROUPS_ENAB yes\n",
			[][2]string{{"UMASK", "027"}},
			"# UMASK is the default\nMAIL_DIR /var/mail\nUMASK 027\nUSERGROUPS_ENAB yes\n"},
		{"commented key is not the key", "#UMASK 022\n", [][2]string{{"UMASK", "027"}}, "#UMASK 022\nUMASK 027\n"},
		{"missing key appended, last line without newline", "A 1", [][2]string{{"B", "2"}}, "A 1\nB 2\n"},
		{"first of duplicates replaced", "UMASK 022\nX 1\nUMASK 077\n", [][2]string{{"UMASK", "027"}}, "UMASK 027\nX 1\nUMASK 077\n"},
		{"prefix of another key untouched", "SHA_CRYPT_MIN_ROUNDS_X 1\n", [][2]string{{"SHA_CRYPT_MIN_ROUNDS", "65536"}},
			"SHA_CRYPT_MIN_ROUNDS_X 1\nSHA_CRYPT_MIN_ROUNDS 65536\n"},
		{"empty file", "", [][2]string{{"A", "1"}, {"B", "2"}}, "A 1\nB 2\n"},
		{"idempotent", "UMASK 027\n", [][2]string{{"UMASK", "027"}}, "UMASK 027\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.in
			for _, kv := range c.kv {
				got = setKey(got, kv[0], kv[1])
			}
			if got != c.want {
				t.Errorf("setKey on %q\n got %q\nwant %q", c.in, got, c.want)
			}
		})
	}
}

func systemPlan() *plan.Plan {
	p := testPlan()
	p.System = &plan.System{
		Files: []plan.File{
			{Path: "/etc/issue", Content: "Authorized access only.\n", Mode: 0o644, Owner: "root:root"},
			{Path: "/etc/modprobe.d/hardbake-blocklist.conf", Content: "install sctp /bin/true\n", Mode: 0o644, Owner: "root:root"},
		},
		Settings: []plan.Setting{{Path: "/etc/login.defs", Key: "UMASK", Value: "027"}},
		Services: []string{"auditd.service"},
	}
	return p
}

// The system measures: files and settings at the early stage, before the
// admin exists; the late stage proves them and waits for the services the
// packages bring; check finds drift in a distribution-owned file.
func TestSystemMeasures(t *testing.T) {
	m := newFake(t)
	m.write("/etc/login.defs", "MAIL_DIR /var/mail\nUMASK\t\t022\nENCRYPT_METHOD SHA512\n", 0o644)
	m.install(systemPlan())
	code, r, out := m.firstBoot(t)
	if code != ExitFailed {
		t.Fatalf("late stage without auditd running: exit %d, want %d\n%s", code, ExitFailed, out)
	}
	if got := stepStatus(r, StageEarly, "system-config"); got != plan.StatusApplied {
		t.Errorf("early system-config %s, want applied", got)
	}
	if got := m.read("/etc/login.defs"); got != "MAIL_DIR /var/mail\nUMASK 027\nENCRYPT_METHOD SHA512\n" {
		t.Errorf("login.defs:\n%s", got)
	}
	if got := m.read("/etc/issue"); got != "Authorized access only.\n" {
		t.Errorf("/etc/issue: %q", got)
	}
	if !strings.Contains(stepError(r, StageLate, "system"), "not as planned: auditd.service") {
		t.Errorf("late system step error %q", stepError(r, StageLate, "system"))
	}

	m.active["auditd.service"] = true
	if code, r, out := m.apply(StageLate, false); code != ExitOK {
		t.Fatalf("late stage with auditd running: exit %d\n%s\n%+v", code, out, r.Steps)
	}
	if r := m.check(); r.Result != plan.ResultHardened {
		t.Fatalf("check: %s %+v", r.Result, r.Steps)
	}

	// An admin edits login.defs back: check reports the drift by file.
	m.write("/etc/login.defs", "MAIL_DIR /var/mail\nUMASK 022\nENCRYPT_METHOD SHA512\n", 0o644)
	if r := m.check(); r.Result != plan.ResultFailed || !strings.Contains(stepError(r, StageCheck, "system"), "not as planned: /etc/login.defs") {
		t.Errorf("check after drift: %s, system step %q", r.Result, stepError(r, StageCheck, "system"))
	}
}

// check runs the check stage and decodes the report it prints.
func (m *fakeMachine) check() *plan.Report {
	m.t.Helper()
	a := m.agent()
	_, _ = a.Run(Options{Stage: StageCheck, PlanPath: plan.PlanPath})
	var rep plan.Report
	if err := json.Unmarshal([]byte(a.Out.(*strings.Builder).String()), &rep); err != nil {
		m.t.Fatalf("check report: %v", err)
	}
	return &rep
}

// A settings file that is not there is an error naming it, never a new file.
func TestSystemSettingsFileMissing(t *testing.T) {
	m := newFake(t)
	m.install(systemPlan())
	code, r, _ := m.apply(StageEarly, false)
	if code == ExitOK || !strings.Contains(stepError(r, StageEarly, "system-config"), "settings file /etc/login.defs") {
		t.Errorf("exit %d, system-config %q", code, stepError(r, StageEarly, "system-config"))
	}
	if m.exists("/etc/login.defs") {
		t.Error("login.defs was created")
	}
}
