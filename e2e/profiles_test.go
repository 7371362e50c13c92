//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/templates"
	"hardbake.dev/hardbake/verify"
)

// TestScenarioProfiles: a scenario that boots a built-in profile boots it
// as it ships, with the suite's mirror as the only change. It needs no
// guest (go test -tags e2e -run TestScenarioProfiles ./e2e).
func TestScenarioProfiles(t *testing.T) {
	key, err := os.ReadFile("../config/testdata/mirror-key.asc")
	if err != nil {
		t.Fatal(err)
	}
	m := &mirror{KeyASCII: string(key)}
	seen := map[string]bool{}
	for _, sc := range scenarios() {
		if sc.Profile == "" {
			continue
		}
		seen[sc.Profile] = true
		name, doc, err := scenarioProfile(sc, m)
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		got, err := config.DecodeProfile(name+".yaml", doc)
		if err != nil {
			t.Fatalf("%s: the profile it boots does not validate: %v\n%s", sc.Name, err, doc)
		}
		shipped, _ := templates.Profile(sc.Profile)
		want, err := config.DecodeProfile(sc.Profile+".yaml", shipped)
		if err != nil {
			t.Fatal(err)
		}
		if got.Updates.Mirror == nil || got.Updates.Mirror.URL != "http://"+mirrorGuestAddr+"/debian" {
			t.Errorf("%s: mirror %+v, want the suite's", sc.Name, got.Updates.Mirror)
		}
		got.Updates.Mirror = want.Updates.Mirror
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the booted %s differs from the shipped one beyond the mirror", sc.Name, sc.Profile)
		}
		if name != sc.Profile || sc.crypto() != want.SSH.Crypto {
			t.Errorf("%s: name %q, crypto %q; shipped %q", sc.Name, name, sc.crypto(), want.SSH.Crypto)
		}
	}
	for _, p := range templates.ProfileNames() {
		if !seen[p] {
			t.Errorf("no scenario boots the built-in profile %q", p)
		}
	}
}

// TestWeakenedSeed: the weakened seed's plan puts the weakening first in
// the sshd drop-in and tells the agent to expect it, so the agent applies
// it as planned and only the outside checks can object. Guest-free; needs
// bin/hardbake (make build).
func TestWeakenedSeed(t *testing.T) {
	var sc scenario
	for _, s := range scenarios() {
		if s.Name == "verify-image-weak" {
			sc = s
		}
	}
	key, err := os.ReadFile("../config/testdata/mirror-key.asc")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k, err := newSSHKey(filepath.Join(dir, "key"), "weak")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := makeSeed(context.Background(), repoRoot(t), dir, sc, &mirror{KeyASCII: string(key)}, k); err != nil {
		t.Fatal(err)
	}
	ud, err := os.ReadFile(filepath.Join(dir, "seed", "user-data"))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := verify.PlanFromUserData(ud)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pl.SSH.DropIn.Content, sc.Weaken) {
		t.Errorf("drop-in does not start with the weakening:\n%s", pl.SSH.DropIn.Content)
	}
	for k, v := range sc.WeakenExpect {
		if pl.SSH.Expect[k] != v {
			t.Errorf("plan expects %s %q, want %q", k, pl.SSH.Expect[k], v)
		}
	}
	sum := sha256.Sum256([]byte(planJSON(t, ud)))
	if !strings.Contains(string(ud), hex.EncodeToString(sum[:])) {
		t.Error("user-data does not pin the weakened plan's sha256")
	}
}

// planJSON is the plan document as the user-data carries it.
func planJSON(t *testing.T, ud []byte) string {
	data, err := render.PlanInUserData(ud)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestProfilePackagesInMirror: every package a built-in profile installs
// at first boot is in the suite's mirror (profilePackages), or the guests
// would fail apt in the hermetic network. Guest-free.
func TestProfilePackagesInMirror(t *testing.T) {
	order, err := os.ReadFile("../examples/web-order.yaml")
	if err != nil {
		t.Fatal(err)
	}
	agent := render.NewAgent(render.AgentSeed, "amd64", []byte("agent"), "")
	for _, name := range templates.ProfileNames() {
		shipped, _ := templates.Profile(name)
		p, err := config.DecodeProfile(name+".yaml", shipped)
		if err != nil {
			t.Fatal(err)
		}
		o, src, err := config.DecodeOrder("web-order.yaml", order)
		if err != nil {
			t.Fatal(err)
		}
		m, err := o.Resolve(p, src)
		if err != nil {
			t.Fatal(err)
		}
		res, err := render.Compile(p, m, agent, render.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var ud struct {
			Packages []string `yaml:"packages"`
		}
		if err := yaml.Unmarshal(res.UserData, &ud); err != nil {
			t.Fatal(err)
		}
		for _, pkg := range ud.Packages {
			// nftables is in the images; the mirror gets it apart (customizeScript).
			if pkg != "nftables" && !slices.Contains(profilePackages, pkg) {
				t.Errorf("%s installs %s, which the suite's mirror lacks (profilePackages)", name, pkg)
			}
		}
	}
}
