package main

import (
	"strings"
	"testing"
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
		{[]string{"apply", "--stage", "early", "--root", "/nonexistent", "--plan-sha256", "00"}, 2, "FAILED step=plan"},
	} {
		var out, errb strings.Builder
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("%q: exit %d out %q err %q, want %d %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out)
		}
	}
}

func TestParseFlags(t *testing.T) {
	a, b := "", ""
	if err := parseFlags([]string{"--plan=/p", "-root", "/r"}, map[string]*string{"plan": &a, "root": &b}); err != nil || a != "/p" || b != "/r" {
		t.Errorf("%v %q %q", err, a, b)
	}
}
