package main

import (
	"encoding/json"
	"strings"
	"testing"

	"hardbake.dev/hardbake/plan"
)

func TestCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, ""},
		{[]string{"frobnicate"}, 2, ""},
		{[]string{"apply"}, 2, ""},
		{[]string{"apply", "--stage", "middle"}, 2, ""},
		{[]string{"apply", "--stage=early", "--bogus", "x"}, 2, ""},
		{[]string{"check", "--stage", "early"}, 2, ""},
		{[]string{"check", "--plan"}, 2, ""},
		{[]string{"version"}, 0, "hardbake-firstboot dev"},
		{[]string{"send-report", "--now"}, 2, ""},
		// No --root: the commands the agent runs act on this machine.
		{[]string{"apply", "--stage", "early", "--root", "/tmp/x"}, 2, ""},
		{[]string{"check", "--root", "/tmp/x"}, 2, ""},
	} {
		var out, errb strings.Builder
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("%q: exit %d out %q err %q, want %d %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out)
		}
	}
}

// check prints the report JSON and nothing else on stdout, also when it
// cannot start; the summary line goes to stderr.
func TestCheckStdoutIsJSON(t *testing.T) {
	var out, errb strings.Builder
	code := run([]string{"check", "--plan", "/nonexistent/plan.json"}, &out, &errb)
	var rep plan.Report
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil || code != 2 || rep.Result != plan.ResultFailed {
		t.Fatalf("exit %d, stdout %q: %v", code, out.String(), err)
	}
	if !strings.Contains(errb.String(), "hardbake: FAILED step=plan (failed): read plan") {
		t.Errorf("stderr %q", errb.String())
	}
}

func TestParseFlags(t *testing.T) {
	a, b := "", ""
	if err := parseFlags([]string{"--plan=/p", "-stage", "/r"}, map[string]*string{"plan": &a, "stage": &b}); err != nil || a != "/p" || b != "/r" {
		t.Errorf("%v %q %q", err, a, b)
	}
}
