package render_test

import (
	"fmt"
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/render"
)

// TestRandomSSHPortSkipsDeclaredPorts: a random SSH port never lands on a
// TCP port the profile or the order declares, and the choice is the same on
// every render of the same order.
func TestRandomSSHPortSkipsDeclaredPorts(t *testing.T) {
	key := testKey(t)
	resolve := func(profileBody, orderExtra string) (*config.Profile, *config.Machine) {
		t.Helper()
		p, err := config.DecodeProfile("p.yaml", []byte("apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata: {name: t}\n"+profileBody))
		if err != nil {
			t.Fatal(err)
		}
		o, src, err := config.DecodeOrder("o.yaml", []byte("hostname: web1\ninstance_id: i-42\nssh_keys: ["+fmt.Sprintf("%q", key)+"]\n"+orderExtra))
		if err != nil {
			t.Fatal(err)
		}
		m, err := o.Resolve(p, src)
		if err != nil {
			t.Fatal(err)
		}
		return p, m
	}
	p, m := resolve("", "")
	free := render.SSHPort(p, m)
	if free < 49152 || free > 65535 {
		t.Fatalf("random port %d outside 49152–65535", free)
	}

	// The profile declares the hashed port and the two after it (the last
	// wraps nothing here, but the step must skip all three).
	services := fmt.Sprintf("firewall:\n  services:\n    - port: %d\n    - port: %d\n    - port: %d\n      proto: udp\n", free, next(free), next(next(free)))
	p2, m2 := resolve(services, "")
	got := render.SSHPort(p2, m2)
	if got == free || got == next(free) {
		t.Errorf("random port %d lands on a declared TCP port", got)
	}
	if got != next(next(free)) { // udp on that number does not collide with SSH over tcp
		t.Errorf("random port %d, want the next free TCP port %d", got, next(next(free)))
	}
	if again := render.SSHPort(p2, m2); again != got {
		t.Errorf("not deterministic: %d then %d", got, again)
	}

	// The order's allow list counts too, and so does an order's "random".
	p3, m3 := resolve("ssh:\n  port: 2222\n", fmt.Sprintf("ssh_port: random\nallow: [\"%d\", \"%d/tcp\"]\n", free, next(free)))
	if got := render.SSHPort(p3, m3); got == free || got == next(free) || got == 2222 {
		t.Errorf("order random port %d collides (allow %d, %d; profile port 2222 overridden)", got, free, next(free))
	}

	// The port the plan and the firewall use is that same port.
	res, err := render.Compile(p2, m2, fakeAgent, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.SSHPort != got || !strings.Contains(string(res.PlanJSON), fmt.Sprintf("\"port\":%d", got)) {
		t.Errorf("rendered ssh port %d, want %d", res.SSHPort, got)
	}
}

// next is the following port of the random range, wrapping at its end.
func next(p int) int {
	if p == 65535 {
		return 49152
	}
	return p + 1
}
