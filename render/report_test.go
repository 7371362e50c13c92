package render_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/internal/testtool"
	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

const testReportKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func TestReportEndpointValidate(t *testing.T) {
	for _, c := range []struct {
		url, key, err string
	}{
		{"http://10.0.2.100:8080/report/9f0c1d2e3f405162738495a6b7c8d9e0", testReportKey, ""},
		{"https://hardbaked.example.com/base/report/order.1_x-y", testReportKey, ""},
		{"ftp://h/report/1", testReportKey, "want http(s)"},
		{"http:///report/1", testReportKey, "want http(s)"},
		{"http://u:p@h/report/1", testReportKey, "no user"},
		{"http://h/report/1?x=1", testReportKey, "no user, query"},
		{"http://h/report/1#f", testReportKey, "fragment"},
		{"http://h/", testReportKey, "last path segment"},
		{"http://h/report/a%20b", testReportKey, "last path segment"},
		{"http://h/report/1", "", "64 lowercase hex"},
		{"http://h/report/1", strings.ToUpper(testReportKey), "64 lowercase hex"},
		{"http://h/report/1", testReportKey[:62], "64 lowercase hex"},
		{"http://h/\x7f", testReportKey, "report URL"},
	} {
		err := render.ReportEndpoint{URL: c.url, Key: c.key}.Validate()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("Validate(%q, %q) = %v, want %q", c.url, c.key, err, c.err)
		}
	}
}

// compileWithReport renders the baseline profile with a report endpoint.
func compileWithReport(t *testing.T, key string, ep *render.ReportEndpoint) (*render.Result, error) {
	t.Helper()
	p := loadProfile(t, "baseline")
	o, src, err := config.DecodeOrder("order.yaml", []byte("hostname: web-1.example.com\nssh_keys:\n  - "+key+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := o.Resolve(p, src)
	if err != nil {
		t.Fatal(err)
	}
	return render.Compile(p, m, fakeAgent, render.Options{Report: ep})
}

// TestReportEndpointInUserData: the endpoint reaches the machine as a
// root-only write_files entry the sender reads; the plan (and its digest)
// does not carry it; cloud-init's schema accepts the document.
func TestReportEndpointInUserData(t *testing.T) {
	ep := &render.ReportEndpoint{URL: "http://10.0.2.100:8080/report/9f0c1d2e3f405162738495a6b7c8d9e0", Key: testReportKey}
	key := testKey(t)
	res, err := compileWithReport(t, key, ep)
	if err != nil {
		t.Fatal(err)
	}
	var ud struct {
		WriteFiles []struct {
			Path        string `yaml:"path"`
			Content     string `yaml:"content"`
			Owner       string `yaml:"owner"`
			Permissions string `yaml:"permissions"`
		} `yaml:"write_files"`
	}
	if err := yaml.Unmarshal(res.UserData, &ud); err != nil {
		t.Fatal(err)
	}
	var found int
	for _, f := range ud.WriteFiles {
		if f.Path != plan.ReportEndpointPath {
			continue
		}
		found++
		if f.Owner != "root:root" || f.Permissions != "0600" {
			t.Errorf("owner %s, permissions %s: want root:root 0600", f.Owner, f.Permissions)
		}
		var doc map[string]string
		if err := json.Unmarshal([]byte(f.Content), &doc); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"url": ep.URL, "order_id": "9f0c1d2e3f405162738495a6b7c8d9e0", "key": testReportKey}
		if len(doc) != len(want) || doc["url"] != want["url"] || doc["order_id"] != want["order_id"] || doc["key"] != want["key"] {
			t.Errorf("endpoint file %v, want %v", doc, want)
		}
	}
	if found != 1 {
		t.Fatalf("%d endpoint files in write_files", found)
	}
	if bytes.Contains(res.PlanJSON, []byte(testReportKey)) {
		t.Error("the plan carries the report key")
	}
	plain, err := compileWithReport(t, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plain.PlanDigest != res.PlanDigest {
		t.Error("the report endpoint changed the plan")
	}
	if bytes.Contains(plain.UserData, []byte(plan.ReportEndpointPath)) {
		t.Error("no endpoint given, but the user-data names the endpoint file")
	}
	again, err := compileWithReport(t, key, ep)
	if err != nil || !bytes.Equal(again.UserData, res.UserData) {
		t.Errorf("not deterministic: %v", err)
	}

	t.Run("cloud-init schema", func(t *testing.T) {
		ci := testtool.Require(t, "cloud-init")
		path := filepath.Join(t.TempDir(), "user-data")
		if err := os.WriteFile(path, res.UserData, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(ci, "schema", "--config-file", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
			t.Fatalf("cloud-init schema: %v\n%s", err, out)
		}
	})

	if _, err := compileWithReport(t, key, &render.ReportEndpoint{URL: ep.URL, Key: "nothex"}); err == nil {
		t.Error("a bad key compiled")
	}
}
