package render_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fakeAgent stands in for the agent binary: only its sha256 reaches the
// user-data in seed mode.
var fakeAgent = render.NewAgent(render.AgentSeed, "amd64", []byte("hardbake-firstboot test binary"), "")

// compileExample renders an example order (examples/) with a profile, which
// is a built-in name or a path under examples/.
func compileExample(t testing.TB, profileRef, orderFile string, agent render.Agent) *render.Result {
	t.Helper()
	p := loadProfile(t, profileRef)
	data, err := os.ReadFile(filepath.Join("..", "examples", orderFile))
	if err != nil {
		t.Fatal(err)
	}
	o, src, err := config.DecodeOrder(orderFile, data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := o.Resolve(p, src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := render.Compile(p, m, agent, render.Options{NetworkConfig: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func loadProfile(t testing.TB, ref string) *config.Profile {
	t.Helper()
	data, ok := templates.Profile(ref)
	if !ok {
		var err error
		if data, err = os.ReadFile(filepath.Join("..", "examples", ref)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := config.DecodeProfile(ref, data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGolden(t *testing.T) {
	cases := []struct{ name, profile, order string }{
		{"baseline", "baseline", "web-order.yaml"},
		{"strict", "strict", "web-order.yaml"},
		{"mirror", "mirror-profile.yaml", "db-order.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := compileExample(t, c.profile, c.order, fakeAgent)
			for suffix, got := range map[string][]byte{
				".user-data":      res.UserData,
				".meta-data":      res.MetaData,
				".network-config": res.NetworkConfig,
				// The user-data carries the plan compressed; this is it
				// readable, one JSON document indented for review.
				".plan.json": indentJSON(t, res.PlanJSON),
			} {
				path := filepath.Join("testdata", "golden", c.name+suffix)
				if *update {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./render -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the golden file; inspect with -update and git diff", path)
				}
			}
		})
	}
}

func indentJSON(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	a := compileExample(t, "strict", "web-order.yaml", fakeAgent)
	for i := 0; i < 5; i++ {
		b := compileExample(t, "strict", "web-order.yaml", fakeAgent)
		if !bytes.Equal(a.UserData, b.UserData) || !bytes.Equal(a.PlanJSON, b.PlanJSON) {
			t.Fatal("two renders of the same input differ")
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, profile := range []string{"baseline", "strict"} {
		b.Run(profile, func(b *testing.B) {
			p := loadProfile(b, profile)
			data, err := os.ReadFile("../examples/web-order.yaml")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				o, src, err := config.DecodeOrder("web-order.yaml", data)
				if err != nil {
					b.Fatal(err)
				}
				m, err := o.Resolve(p, src)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := render.Compile(p, m, fakeAgent, render.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// With the agent fetched by URL, the user-data of every built-in profile
// must fit the smallest common provider limit (AWS EC2, 16 KB).
func TestURLModeFitsSmallestLimit(t *testing.T) {
	agent := render.NewAgent(render.AgentURL, "amd64", []byte("agent"), "https://mirror.provider.example/hardbake/hardbake-firstboot-linux-amd64")
	for _, profile := range templates.ProfileNames() {
		res := compileExample(t, profile, "web-order.yaml", agent)
		if n := len(res.UserData); n > 16*1024 {
			t.Errorf("%s: user-data is %d bytes, over 16 KiB", profile, n)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("%s: unexpected size warnings %v", profile, res.Warnings)
		}
	}
	// And an embedded 2 MiB agent (incompressible, like a binary) is over
	// every limit, and says so.
	bin := make([]byte, 2<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	big := render.NewAgent(render.AgentEmbed, "amd64", bin, "")
	if res := compileExample(t, "baseline", "web-order.yaml", big); len(res.Warnings) == 0 {
		t.Error("no size warning for a user-data carrying a 2 MiB agent")
	}
}

// A mirror replaces the image's sources: without a security source the
// machine would never see a security update, and Compile says so.
func TestMirrorWithoutSecurityWarns(t *testing.T) {
	const warning = "updates.mirror: no security source"
	cases := []struct {
		name        string
		suites      []string
		securityURL string
		want        bool
	}{
		{"default suites", []string{"$RELEASE", "$RELEASE-updates"}, "", true},
		{"securityURL", []string{"$RELEASE", "$RELEASE-updates"}, "http://mirror.provider.example/debian-security", false},
		{"a -security suite", []string{"$RELEASE", "$RELEASE-security"}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := loadProfile(t, "mirror-profile.yaml")
			p.Updates.Mirror.Suites, p.Updates.Mirror.SecurityURL = c.suites, c.securityURL
			res := compileWith(t, p, "hostname: web1\ninstance_id: i-1\nssh_keys: [\""+testKey(t)+"\"]\n")
			got := slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.HasPrefix(w, warning) })
			if got != c.want {
				t.Errorf("warnings %q: want the security warning %v", res.Warnings, c.want)
			}
		})
	}
	if res := compileExample(t, "baseline", "web-order.yaml", fakeAgent); len(res.Warnings) != 0 {
		t.Errorf("baseline (no mirror): warnings %q", res.Warnings)
	}
}
