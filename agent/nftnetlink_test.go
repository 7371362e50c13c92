package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/templates"
)

// renderedNftConf renders nftables.conf for a profile (a built-in name or
// a file under the repository) and an order file, through render.
func renderedNftConf(t *testing.T, profile, order string) string {
	t.Helper()
	data, ok := templates.Profile(profile)
	if !ok {
		var err error
		if data, err = os.ReadFile(filepath.Join("..", profile)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := config.DecodeProfile(profile, data)
	if err != nil {
		t.Fatal(err)
	}
	od, err := os.ReadFile(filepath.Join("..", order))
	if err != nil {
		t.Fatal(err)
	}
	o, src, err := config.DecodeOrder(order, od)
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
	return res.Plan.Firewall.Nftables.Content
}

// multiSourceConf is a rendered ruleset with a port rule carrying several
// sources per family (interval sets), which the built-in profiles lack.
func multiSourceConf(t *testing.T) string {
	t.Helper()
	conf := renderedNftConf(t, "baseline", "examples/minimal-order.yaml")
	extra := "\t\tip saddr { 192.0.2.7, 198.51.100.0/24, 203.0.113.128/25 } tcp dport 5432 accept\n" +
		"\t\tip6 saddr { 2001:db8::/48, 2001:db8:5::1 } tcp dport 5432 accept\n" +
		"\t\tip saddr { 0.0.0.0/8, 255.255.255.255 } udp dport 9 accept\n" +
		"\t\tip6 saddr { fe80::/10 } tcp dport 22 accept\n" +
		"\t\tip6 saddr { 2001:db8::/33 } tcp dport 23 accept\n" +
		"\t\tip saddr { 10.0.0.0/9 } tcp dport 24 accept\n"
	i := strings.Index(conf, "\t}\n\n\tchain forward")
	if i < 0 {
		t.Fatal("rendered ruleset has no input chain end")
	}
	return conf[:i] + extra + conf[i:]
}

type nftCase struct{ name, conf string }

func nftCases(t *testing.T) []nftCase {
	return []nftCase{
		{"baseline", renderedNftConf(t, "baseline", "examples/minimal-order.yaml")},
		{"strict", renderedNftConf(t, "strict", "examples/web-order.yaml")},
		{"mirror-profile (sources)", renderedNftConf(t, "examples/mirror-profile.yaml", "examples/web-order.yaml")},
		{"several sources per family", multiSourceConf(t)},
	}
}

func TestParseNftConfRendered(t *testing.T) {
	for _, c := range nftCases(t) {
		p, err := parseNftConf(c.conf)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rs := p.allowed()
		if rs.PolicyV4 != "drop" || rs.PolicyV6 != "drop" {
			t.Errorf("%s: policy %q/%q", c.name, rs.PolicyV4, rs.PolicyV6)
		}
		if len(p.Chains) != 3 || len(p.chain("input").Rules) < 13 {
			t.Errorf("%s: %d chains, %d input rules", c.name, len(p.Chains), len(p.chain("input").Rules))
		}
	}
}

func TestParseNftConfErrors(t *testing.T) {
	head := "table inet hardbake {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
	tail := "\t}\n}\n"
	for _, tc := range []struct{ name, conf, want string }{
		{"empty", "", "missing table"},
		{"ip table", "table ip x {\n}\n", "nftables.conf:1: want `flush ruleset` or `table inet NAME {`"},
		{"unknown statement", head + "\t\tmeta mark 1 accept\n" + tail, `nftables.conf:4: statement not supported over netlink: "meta mark 1 accept"`},
		{"odd comment", head + "\t\ttcp dport 1 accept comment \"a$(b)\"\n" + tail, "statement not supported over netlink"},
		{"port 0", head + "\t\ttcp dport 0 accept\n" + tail, "nftables.conf:4: port 0 out of range"},
		{"port too big", head + "\t\ttcp dport 65536 accept\n" + tail, "port 65536 out of range"},
		{"wrong family source", head + "\t\tip saddr { ::1 } tcp dport 1 accept\n" + tail, `source "::1" is of the other address family`},
		{"host bits", head + "\t\tip saddr { 10.0.0.1/8 } tcp dport 1 accept\n" + tail, "has host bits set"},
		{"everything", head + "\t\tip saddr { 0.0.0.0/0 } tcp dport 1 accept\n" + tail, "matches everything"},
		{"overlap", head + "\t\tip saddr { 10.0.0.0/8, 10.1.0.0/16 } tcp dport 1 accept\n" + tail, "overlap"},
		{"adjacent", head + "\t\tip saddr { 10.0.0.0/25, 10.0.0.128/25 } tcp dport 1 accept\n" + tail, "adjacent"},
		{"unterminated", head, "unterminated"},
		{"no hook", "table inet x {\n\tchain input {\n\t\ttcp dport 1 accept\n\t}\n}\n", "nftables.conf:3: the chain type must be its first line"},
		{"two tables", "table inet x {\n}\ntable inet y {\n}\n", "nftables.conf:3: only one table"},
		{"no input", "table inet x {\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t}\n}\n", "no input chain"},
		{"duplicate chain", "table inet x {\n\tchain a {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n\tchain a {\n", "nftables.conf:5: chain defined twice"},
		{"two input hooks", "table inet x {\n\tchain a {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n\tchain b {\n\t\ttype filter hook input priority filter; policy drop;\n", "nftables.conf:6: two chains on one hook"},
	} {
		_, err := parseNftConf(tc.conf)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// inOwnNetns re-runs the calling test under `unshare --net` (a network
// namespace of its own, with its own empty ruleset) and reports true in
// that child, false in the parent, which only checks the child's result.
// Re-exec is used rather than unshare(2) on a locked thread because nft,
// exec'd from the test, must land in the same namespace: a child process
// started by the runtime may fork from any thread.
func inOwnNetns(t *testing.T) bool {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("network namespace: %v", err)
	}
	if parent := os.Getenv("HARDBAKE_NETNS_PARENT"); parent != "" {
		if self == parent {
			t.Fatalf("refusing to run: still in the parent's network namespace %s", self)
		}
		return true
	}
	needTool(t, "nft", "unshare")
	cmd := exec.Command("unshare", "--net", "--", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "HARDBAKE_NETNS_PARENT="+self)
	out, err := cmd.CombinedOutput()
	t.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("unshare --net %s: %v", t.Name(), err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the test did not pass in its namespace")
	}
	return false
}

func nftRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("nft", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// listedRules is `nft -j list ruleset` as comparable lines: each table,
// chain and rule object without handles, in the order nft lists them.
func listedRules(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Nftables []map[string]map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(nftRun(t, "-j", "list", "ruleset")), &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, obj := range doc.Nftables {
		for kind, v := range obj {
			if kind == "metainfo" {
				continue
			}
			delete(v, "handle")
			b, _ := json.Marshal(v) // map keys sorted: a stable line
			out = append(out, kind+" "+string(b))
		}
	}
	return out
}

func diffLines(want, got []string) string {
	var b strings.Builder
	for i := 0; i < max(len(want), len(got)); i++ {
		w, g := "(none)", "(none)"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			fmt.Fprintf(&b, "object %d:\n  nft -f:  %s\n  netlink: %s\n", i+1, w, g)
		}
	}
	return b.String()
}

// The agent's netlink load and the real nft's load of the same rendered
// nftables.conf list the same ruleset, rule by rule; the agent's Verify
// accepts nft's load (same bytecode) and refuses a different one; nft -f
// replaces the netlink-loaded ruleset (the package taking over).
func TestNetlinkMatchesNft(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	nl := Netlink{}
	dir := t.TempDir()
	for _, c := range nftCases(t) {
		p, err := parseNftConf(c.conf)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		conf := filepath.Join(dir, "nftables.conf")
		if err := os.WriteFile(conf, []byte(c.conf), 0o600); err != nil {
			t.Fatal(err)
		}
		nftRun(t, "flush", "ruleset")
		if err := nl.Replace(p); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := nl.Verify(p); err != nil {
			t.Errorf("%s: Verify after the netlink load: %v", c.name, err)
		}
		got := listedRules(t)
		// The package takes over: nft -f (flush ruleset + table, one
		// transaction) replaces what netlink loaded.
		nftRun(t, "-f", conf)
		want := listedRules(t)
		if d := diffLines(want, got); d != "" {
			t.Errorf("%s: nft -j list ruleset differs:\n%s", c.name, d)
		}
		if len(want) < 5 {
			t.Errorf("%s: only %d objects listed", c.name, len(want))
		}
		if err := nl.Verify(p); err != nil {
			t.Errorf("%s: Verify rejects nft's own load of the same file: %v", c.name, err)
		}
		// Netlink replaces nft's ruleset too (a re-run of the early stage).
		if err := nl.Replace(p); err != nil {
			t.Fatalf("%s: replace: %v", c.name, err)
		}
		if d := diffLines(want, listedRules(t)); d != "" {
			t.Errorf("%s: after a second netlink replace:\n%s", c.name, d)
		}
	}
	// Verify fails on a ruleset that is not the plan's.
	conf := renderedNftConf(t, "baseline", "examples/minimal-order.yaml")
	p, _ := parseNftConf(conf)
	for _, mutate := range []struct{ name, from, to string }{
		{"ssh dropped", ` accept comment "ssh"`, ` drop comment "ssh"`},
		{"accept policy", "policy drop;\n\n", "policy accept;\n\n"},
		{"other icmp set", "time-exceeded, parameter-problem }", "parameter-problem }"},
		{"no comment", ` comment "ssh"`, ""},
	} {
		other := strings.Replace(conf, mutate.from, mutate.to, 1)
		if other == conf {
			t.Fatalf("%s: mutation did not apply", mutate.name)
		}
		f := filepath.Join(dir, "other.conf")
		if err := os.WriteFile(f, []byte(other), 0o600); err != nil {
			t.Fatal(err)
		}
		nftRun(t, "-f", f)
		if err := nl.Verify(p); err == nil {
			t.Errorf("Verify accepts a ruleset with %s", mutate.name)
		}
	}
	nftRun(t, "add", "table", "ip", "extra")
	if err := nl.Verify(p); err == nil || !strings.Contains(err.Error(), "want only inet hardbake") {
		t.Errorf("Verify with an extra table: %v", err)
	}
	if err := nl.Flush(); err != nil {
		t.Fatal(err)
	}
	if rules := listedRules(t); len(rules) != 0 {
		t.Errorf("after Flush: %v", rules)
	}
}
