package ovh_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/edgetest"
	"hardbake.dev/hardbake/edge/fromconfig"
	"hardbake.dev/hardbake/render"
)

// TestPipeline: the rules of the example profile and order go from the
// compiled plan through edge.OVHRules to the API, which accepts every one
// and ends holding them, SSH port included.
func TestPipeline(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p, err := config.DecodeProfile("mirror-profile.yaml", read("mirror-profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	o, src, err := config.DecodeOrder("db-order.json", read("db-order.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := o.Resolve(p, src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := render.Compile(p, m, render.NewAgent(render.AgentSeed, "amd64", []byte("x"), ""), render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := fromconfig.Input(p, m, res.Plan)
	if err != nil {
		t.Fatal(err)
	}
	rules, _, err := edge.OVHRules(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := edgetest.NewOVH(t)
	lc := &leakCheck{}
	out, err := newClient(t, f, lc, edgetest.OVHSecret).Apply(context.Background(), ip, rules)
	if err != nil || !out.Complete {
		t.Fatalf("%v %+v", err, out)
	}
	checkHolds(t, f, rules)
	held, _ := f.Rules(ip.String())
	found := false
	for _, r := range held {
		found = found || (r.Protocol == "tcp" && r.DestinationPort == res.Plan.SSH.Port && r.Source == "")
	}
	if !found {
		t.Errorf("no rule opens the plan's SSH port %d", res.Plan.SSH.Port)
	}
}
