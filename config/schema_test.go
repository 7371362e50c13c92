package config

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// compileSchema compiles s with a real JSON Schema (draft 2020-12)
// validator.
func compileSchema(t *testing.T, s []byte) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("mem://schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("mem://schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return sch
}

// yamlToJSONValue reads a YAML (or JSON) document as JSON data, the form a
// JSON Schema validator (or an editor's YAML language server) checks.
func yamlToJSONValue(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestSchemaAgreesWithValidator: over a corpus of valid and invalid
// profiles, `hardbake schema` and the CLI's validator accept and refuse the
// same ones. The file name says what the CLI must do (valid-, bad-,
// cannot-); "# expect: invalid PATH" names the field it must name. cannot-
// cases are the rules JSON Schema cannot express (schemaCannotExpress[N]):
// the schema must accept them, so the list is exact, not a blanket excuse.
func TestSchemaAgreesWithValidator(t *testing.T) {
	s, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	sch := compileSchema(t, s)
	files, err := filepath.Glob("testdata/schema-corpus/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("corpus has %d profiles, want at least 50", len(files))
	}
	counts := map[string]int{}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			kind, _, _ := strings.Cut(name, "-")
			counts[kind]++
			var wantPath string
			cannot := -1
			if first, _, _ := strings.Cut(string(data), "\n"); strings.HasPrefix(first, "# expect: invalid ") {
				spec := strings.TrimPrefix(first, "# expect: invalid ")
				wantPath, spec, _ = strings.Cut(spec, "; schema-cannot ")
				if spec != "" {
					if cannot, err = strconv.Atoi(spec); err != nil || cannot >= len(schemaCannotExpress) {
						t.Fatalf("bad schema-cannot index %q", spec)
					}
				}
			}
			_, cliErr := DecodeProfile(name, data)
			schemaErr := sch.Validate(yamlToJSONValue(t, data))
			switch kind {
			case "valid":
				if cliErr != nil || schemaErr != nil {
					t.Fatalf("valid profile refused:\nCLI: %v\nschema: %v", cliErr, schemaErr)
				}
			case "bad", "cannot":
				if cliErr == nil {
					t.Fatal("CLI accepted an invalid profile")
				}
				ie, ok := cliErr.(*InputError)
				if !ok || !hasPath(ie, wantPath) {
					t.Fatalf("CLI error does not name %s:\n%v", wantPath, cliErr)
				}
				if kind == "bad" && schemaErr == nil {
					t.Fatalf("schema accepts what the CLI refuses:\n%v", cliErr)
				}
				if kind == "cannot" && schemaErr != nil {
					t.Fatalf("schema refuses a case listed as inexpressible (%s): drop it from the list or rename the case bad-:\n%v", schemaCannotExpress[cannot], schemaErr)
				}
			default:
				t.Fatalf("corpus file %s: name must start with valid-, bad- or cannot-", name)
			}
		})
	}
	if counts["valid"] < 10 || counts["bad"] < 40 || counts["cannot"] < len(schemaCannotExpress) {
		t.Errorf("corpus too thin: %v", counts)
	}
}

var testKey = func() string {
	b, err := os.ReadFile("testdata/mirror-key.asc")
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(b))
}()

// TestShippedProfilesMatchSchema: the built-in and example profiles pass
// both the schema and the CLI.
func TestShippedProfilesMatchSchema(t *testing.T) {
	s, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	sch := compileSchema(t, s)
	files, _ := filepath.Glob("../templates/profiles/*.yaml")
	files = append(files, "../examples/mirror-profile.yaml")
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeProfile(f, data); err != nil {
			t.Errorf("CLI refuses %s: %v", f, err)
		}
		if err := sch.Validate(yamlToJSONValue(t, data)); err != nil {
			t.Errorf("schema refuses %s: %v", f, err)
		}
	}
}

func hasPath(ie *InputError, path string) bool {
	for _, fe := range ie.Errs {
		if fe.Path == path {
			return true
		}
	}
	return false
}

// TestRuleSchemas: each rule's schema and its check agree on samples at
// and around every boundary.
func TestRuleSchemas(t *testing.T) {
	long := strings.Repeat
	samples := map[string][]any{
		"profileName":  {"web", "a", "web-2", long("a", 63), long("a", 64), "Web", "-web", "web-", "", "w_b"},
		"oneLine":      {"", "x", "a\nb", "a\u0085b", "a\u2028b", "tab\there", long("é", 200), long("é", 201), "a\x7fb"},
		"reboot":       {"none", "00:00", "23:59", "24:00", "4:00", "04:60", "None", ""},
		"mirrorURL":    {"http://m.example", "https://m.example/debian/", "http://10.0.0.1:8080/x", "http://m.example:65535/", "http://m.example:65536/", "http://m.example:0/", "http://m.example:080/", "http://m.example:/", "HTTP://m.example/", "https://u:p@m.example/", "http://m.example/a?b", "http://m.example/%41", "http://m.example/%4", "http://300.1.1.1/", "http://1.2.3/", "http://1and1.example/", "http://m.example./", "http://" + long("a", 64) + ".example/", "http://" + long("a", 63) + ".example/", "http://m.example/" + long("p", 240), "ftp://m.example/", "http://-a.example/", "http://a-.example/", "http://a.1example/", "http://a.b-c/", "http://a/"},
		"suite":        {"bookworm", "$RELEASE", "$RELEASE-updates", "bookworm-backports", "bad suite", "-x", "$(x)", ""},
		"component":    {"main", "non-free-firmware", "updates/main", "Main", "a/b/c", ""},
		"maxAuthTries": {0, 1, 10, 11},
		"maxSessions":  {0, 1, 10, 11},
		"idleLogout":   {"1m", "59s", "15m", "24h", "25h", "0s", "", "15"},
		"banner":       {"", "Authorised access only.", `a\b`, "a\nb", long("é", 500), long("é", 501)},
		"armoredKey":   {testKey, "  \n" + testKey + "\n\n", testKey + "\n" + testKey, "not a key", strings.Replace(testKey, "PUBLIC", "PRIVATE", -1), strings.Replace(testKey, "=RPR1", "=R\x01R1", 1), ""},
		"loginGrace":   {"1s", "600s", "601s", "10m", "11m", "0s", "030s", "1h", "1w", "30", ""},
		"loginName":    {"admin", "deploy", "root", "disk", "systemd-x", "_apt", "debian-tor", "debian", long("a", 32), long("a", 33), "Admin", "1a", ""},
		"groupName":    {"docker", "sudo", "Docker", "", long("a", 33)},
		"shell":        {"/bin/bash", "/usr/bin/dash", "/usr/sbin/nologin", "/bin/false", "bash", ""},
		"port":         {0, 1, 22, 65535, 65536},
		"cidr":         {"10.0.0.0/8", "10.0.0.0/33", "10.0.0.256/8", "010.0.0.0/8", "10.0.0.0/08", "2001:db8::/32", "::/0", "garbage", "10.0.0.0"},
		"f2bDuration":  {"1s", "31536000s", "31536001s", "525600m", "8760h", "365d", "366d", "52w", "53w", "0m", "01m", "1y"},
		"maxretry":     {0, 1, 100, 101},
		"package":      {"curl", "g++", "libstdc++6", "python3.11", "c", "openssh-server-", "curl=1", "curl/bookworm", "curl:amd64", "libc6.", "firewalld", "-o", "Curl", "a+", "a_"},
	}
	for name, r := range fieldRules() {
		ss, ok := samples[name]
		if !ok {
			t.Errorf("rule %s has no samples", name)
			continue
		}
		js, err := json.Marshal(r.schema)
		if err != nil {
			t.Fatal(err)
		}
		sch := compileSchema(t, js)
		for _, v := range ss {
			var reason string
			switch v := v.(type) {
			case string:
				reason = r.str(v)
			case int:
				reason = r.num(v)
			}
			j, _ := json.Marshal(v)
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
			if err != nil {
				t.Fatal(err)
			}
			schemaErr := sch.Validate(inst)
			expressible := !(name == "cidr" && strings.Contains(strconv.Quote(v.(string)), ":")) && !(name == "cidr" && v == "10.0.0.0/08")
			if (reason == "") != (schemaErr == nil) && expressible {
				t.Errorf("rule %s disagrees on %q: check %q, schema %v", name, v, reason, schemaErr)
			}
		}
	}
}
