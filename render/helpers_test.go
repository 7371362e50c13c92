package render_test

import (
	"crypto/ed25519"
	"testing"

	"golang.org/x/crypto/ssh"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/render"
)

// testKey returns a fresh ed25519 public key as an authorized_keys line.
func testKey(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(sshPub)[:len(ssh.MarshalAuthorizedKey(sshPub))-1]) + " test@hardbake"
}

// compileOrder renders an order given as YAML text with a built-in profile.
func compileOrder(t testing.TB, profile, orderYAML string) *render.Result {
	t.Helper()
	return compileWith(t, loadProfile(t, profile), orderYAML)
}

// compileWith renders an order given as YAML text with profile p.
func compileWith(t testing.TB, p *config.Profile, orderYAML string) *render.Result {
	t.Helper()
	o, src, err := config.DecodeOrder("order.yaml", []byte(orderYAML))
	if err != nil {
		t.Fatal(err)
	}
	m, err := o.Resolve(p, src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := render.Compile(p, m, fakeAgent, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}
