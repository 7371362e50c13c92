package verify

import (
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/templates"
)

// renderedDropIn renders a built-in profile for a sample order and
// returns the plan's sshd drop-in.
func renderedDropIn(t testing.TB, profile string) string {
	t.Helper()
	data, ok := templates.Profile(profile)
	if !ok {
		t.Fatalf("no built-in profile %s", profile)
	}
	p, err := config.DecodeProfile("builtin:"+profile, data)
	if err != nil {
		t.Fatal(err)
	}
	_, line, err := NewKey("")
	if err != nil {
		t.Fatal(err)
	}
	o, src, err := config.DecodeOrder("order.yaml", []byte("hostname: verify-test\nssh_keys: ['"+line+"']\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := o.Resolve(p, src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := render.Compile(p, m, render.NewAgent(render.AgentSeed, "amd64", []byte("agent"), ""), render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Plan.SSH.DropIn.Content
}

// cryptoLines keeps the crypto directives of an sshd config.
func cryptoLines(cfg string) string {
	var b strings.Builder
	for _, l := range strings.Split(cfg, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && strings.Contains("kexalgorithms hostkeyalgorithms ciphers macs", strings.ToLower(f[0])) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
