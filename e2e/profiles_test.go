//go:build e2e

package e2e

import (
	"os"
	"reflect"
	"testing"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/templates"
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
