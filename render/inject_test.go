package render_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

// The injection tests: no input value can add a line or a key to the
// user-data or to any file the plan carries. Each field gets a table of
// hostile values; config must either refuse the value (naming the field) or
// rendering must leave every structure exactly as a benign render has it.

// injArmored is a real OpenPGP public key: config checks that it parses.
const injArmored = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEaw9r8hYJKwYBBAHaRw8BAQdAgL2RUTM5JAKG7+wXmvqAGWqElk53zWCbjnq8\nCqhTUfu0KWhhcmRiYWtlIHRlc3QgbWlycm9yIDxtaXJyb3JAZXhhbXBsZS5uZXQ+\niJAEExYIADgWIQQJ7vjk7F84lSJnBoMGkvhgki7W2gUCaw9r8gIbAwULCQgHAgYV\nCgkICwIEFgIDAQIeAQIXgAAKCRAGkvhgki7W2ufuAP4wbqIPeXfNgrt/ZV0bhF8e\nbTvt1dTuvenIGOT55fOebQEAkd2U1Si9x7TRNNNXPqmYxNOhlAZIbb51yQkmLrZA\nxQE=\n=RPR1\n-----END PGP PUBLIC KEY BLOCK-----"

// injProfile exercises every rendered file: mirror with key, firewall
// services with IPv4 and IPv6 sources, recidive, reboot time, sysctl.
const injProfile = `apiVersion: hardbake.dev/v1
kind: Profile
metadata:
  name: @NAME@
  description: @DESCRIPTION@
updates:
  unattended: {enabled: true, reboot: "04:00"}
  mirror:
    url: @URL@
    suites: [@SUITE@, $RELEASE-updates]
    components: [main, @COMPONENT@]
    key: @MIRRORKEY@
ssh:
  port: @PORT@
  allowUsers: [deploy]
  allowGroups: [sshusers]
admin:
  name: @ADMINNAME@
  shell: @SHELL@
  groups: [@GROUP@]
firewall:
  services:
    - port: 443
      sources: [@CIDR@, "2001:db8::/32"]
    - port: 80
fail2ban:
  jails:
    recidive: {bantime: 1w}
sysctl:
  hardening: true
packages: [curl, @PACKAGE@]
`

const injOrder = `hostname: @HOSTNAME@
admin_user: @ADMIN@
ssh_keys: [@KEYLINE@]
allow: [@ALLOW@]
instance_id: @INSTANCE@
`

type injField struct {
	name   string // placeholder, without @
	path   string // the key path errors must name
	benign string // the value a benign render uses
	accept bool   // hostile values may legitimately be accepted
	raw    bool   // the benign value is written unquoted (a number)
}

func injFields(key string) []injField {
	return []injField{
		{name: "HOSTNAME", path: "hostname", benign: "web1.example.com"},
		{name: "ADMIN", path: "admin_user", benign: "webadmin"},
		{name: "KEYLINE", path: "ssh_keys[0]", benign: key + " alice@laptop", accept: true},
		{name: "ALLOW", path: "allow[0]", benign: "8080"},
		{name: "INSTANCE", path: "instance_id", benign: "i-0123456789"},
		{name: "NAME", path: "metadata.name", benign: "full"},
		{name: "DESCRIPTION", path: "metadata.description", benign: "Web servers", accept: true},
		{name: "URL", path: "updates.mirror.url", benign: "https://deb.example.net/debian", accept: true}, // ";", "é"… are URL text,
		{name: "SUITE", path: "updates.mirror.suites[0]", benign: "$RELEASE"},
		{name: "COMPONENT", path: "updates.mirror.components[1]", benign: "contrib"},
		{name: "MIRRORKEY", path: "updates.mirror.key", benign: injArmored, accept: true},
		{name: "PORT", path: "ssh.port", benign: "2222", raw: true},
		{name: "ADMINNAME", path: "admin.name", benign: "ops"},
		{name: "SHELL", path: "admin.shell", benign: "/bin/bash"},
		{name: "GROUP", path: "admin.groups[0]", benign: "docker"},
		{name: "CIDR", path: "firewall.services[0].sources[0]", benign: "203.0.113.0/24"},
		{name: "PACKAGE", path: "packages[1]", benign: "htop"},
	}
}

// injHostile are the values tried in every field, alone and appended to the
// field's benign value.
var injHostile = []string{
	"\n", "\r", "x\ny", "x\r\ny",
	"\n[sshd]\nenabled=false",
	"\nPermitRootLogin yes",
	"\nAllowUsers root",
	"\n  - root",
	"\nruncmd: [reboot]",
	"\n#cloud-config\nusers: []",
	"x: y", "x #y", " # comment", "- item", "[a]", "{a: b}", "&a *a !tag |",
	`"`, `'`, `\`, `"x"`, "'x'",
	"$(reboot)", "`reboot`", "${IFS}reboot", ";reboot", "|reboot", "&& reboot",
	"\u2028", "\u2029", "\u0085", "x\u2028PermitRootLogin yes",
	"\x00", "x\x00y", "\t", "\x1b[2J", "\x7f",
	"\ufeff", "é", " ",
}

// injValue puts hostile inside the field's value the way it could arrive.
func injValue(f injField, key, hostile string, alone bool) string {
	switch f.name {
	case "KEYLINE":
		if alone {
			return key + " " + hostile
		}
		return key + " c" + hostile + "c"
	case "MIRRORKEY":
		// In an armour header: the key stays a valid OpenPGP key, so the
		// accepting path (and the structure checks) run for printable text.
		return strings.Replace(injArmored, "-----\n\n", "-----\nComment: c"+hostile+"c\n\n", 1)
	}
	if alone {
		return hostile
	}
	return f.benign + hostile
}

func injKey(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// injDocs fills the templates: benign values everywhere except over.
func injDocs(fields []injField, over map[string]string) (profile, order string) {
	profile, order = injProfile, injOrder
	for _, f := range fields {
		v, hostile := over[f.name]
		if !hostile {
			v = f.benign
		}
		if !(f.raw && !hostile) {
			v = strconv.Quote(v) // Go's escapes are valid YAML double-quoted escapes
		}
		profile = strings.ReplaceAll(profile, "@"+f.name+"@", v)
		order = strings.ReplaceAll(order, "@"+f.name+"@", v)
	}
	return profile, order
}

var injAgent = render.NewAgent(render.AgentSeed, "amd64", []byte("agent"), "")

func injCompile(profileDoc, orderDoc string) (*config.Profile, *config.Machine, *render.Result, error) {
	p, perr := config.DecodeProfile("p.yaml", []byte(profileDoc))
	o, src, oerr := config.DecodeOrder("o.yaml", []byte(orderDoc))
	if oerr != nil || perr != nil {
		return nil, nil, nil, config.Join(perr, oerr)
	}
	m, err := o.Resolve(p, src)
	if err != nil {
		return nil, nil, nil, err
	}
	res, err := render.Compile(p, m, injAgent, render.Options{})
	return p, m, res, err
}

// shape is a file's structure: per line, its first token (or "#" for a
// comment, "" for a blank line).
func shape(content string) []string {
	lines := strings.Split(content, "\n")
	out := make([]string, len(lines))
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case t == "":
		case strings.HasPrefix(t, "#"):
			out[i] = "#"
		default:
			out[i] = strings.Fields(t)[0]
		}
	}
	return out
}

func planFiles(pl *plan.Plan) map[string]string {
	files := map[string]string{}
	add := func(f plan.File) { files[f.Path] = f.Content }
	add(pl.SSH.DropIn)
	add(pl.SSH.SocketDropIn)
	if fw := pl.Firewall; fw != nil {
		add(fw.Nftables)
		add(fw.IPTablesV4)
		add(fw.IPTablesV6)
		add(fw.IPTablesUnit)
	}
	if pl.Fail2ban != nil {
		add(pl.Fail2ban.JailLocal)
	}
	if pl.Updates != nil {
		for _, f := range pl.Updates.Files {
			add(f)
		}
	}
	if pl.Sysctl != nil {
		add(pl.Sysctl.File)
	}
	return files
}

func countPrefix(content, prefix string) int {
	n := 0
	for _, l := range strings.Split(content, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			n++
		}
	}
	return n
}

var wantFiles = []string{
	"/etc/apt/apt.conf.d/20auto-upgrades",
	"/etc/apt/apt.conf.d/52hardbake-unattended-upgrades",
	"/etc/fail2ban/jail.local",
	"/etc/iptables/rules.v4",
	"/etc/iptables/rules.v6",
	"/etc/nftables.conf",
	"/etc/ssh/sshd_config.d/10-hardbake.conf",
	"/etc/sysctl.d/90-hardbake.conf",
	"/etc/systemd/system/hardbake-firewall.service",
	"/etc/systemd/system/ssh.socket.d/10-hardbake.conf",
}

// checkStructure asserts that res has exactly the structure of the benign
// render base, and that the accepted values arrive unchanged.
func checkStructure(t *testing.T, p *config.Profile, m *config.Machine, res, base *render.Result) {
	t.Helper()
	var ud map[string]any
	if err := yaml.Unmarshal(res.UserData, &ud); err != nil {
		t.Fatalf("user-data does not parse: %v", err)
	}
	wantTop := []string{"apt", "bootcmd", "disable_root", "package_update", "package_upgrade", "packages", "runcmd", "ssh_genkeytypes", "ssh_pwauth", "users", "write_files"}
	if got := slices.Sorted(maps.Keys(ud)); !slices.Equal(got, wantTop) {
		t.Errorf("top-level keys %v, want %v", got, wantTop)
	}
	if !strings.HasPrefix(string(res.UserData), "#cloud-config\n") || countPrefixCol0(string(res.UserData), "#") != 2 {
		t.Errorf("user-data header or extra comment lines:\n%s", res.UserData)
	}
	if ud["disable_root"] != true || ud["ssh_pwauth"] != false {
		t.Errorf("disable_root %v ssh_pwauth %v", ud["disable_root"], ud["ssh_pwauth"])
	}

	users, _ := ud["users"].([]any)
	if len(users) != 1 {
		t.Fatalf("users: %v", ud["users"])
	}
	u, _ := users[0].(map[string]any)
	if got := slices.Sorted(maps.Keys(u)); !slices.Equal(got, []string{"groups", "lock_passwd", "name", "shell", "ssh_authorized_keys", "sudo"}) {
		t.Errorf("users[0] keys %v", got)
	}
	if u["name"] != m.AdminUser || u["shell"] != p.Admin.Shell || u["sudo"] != "ALL=(ALL) NOPASSWD:ALL" || u["lock_passwd"] != true {
		t.Errorf("users[0] %v", u)
	}
	if g, _ := u["groups"].([]any); len(g) != len(p.Admin.Groups) || g[0] != p.Admin.Groups[0] {
		t.Errorf("users[0].groups %v", u["groups"])
	}
	keys, _ := u["ssh_authorized_keys"].([]any)
	if len(keys) != 1 || keys[0] != m.Keys[0].Line {
		t.Errorf("ssh_authorized_keys %q, want [%q]", keys, m.Keys[0].Line)
	}

	boot, _ := ud["bootcmd"].([]any)
	if len(boot) != 1 {
		t.Fatalf("bootcmd has %d entries", len(boot))
	}
	launcher, _ := boot[0].([]any)
	if len(launcher) != 9 || launcher[0] != "sh" || launcher[1] != "-c" || launcher[8] != res.PlanDigest {
		t.Fatalf("bootcmd[0] has %d elements or wrong digest", len(launcher))
	}
	arg, _ := launcher[7].(string)
	if got, err := render.PlanFromArg(arg); err != nil || string(got) != string(res.PlanJSON) {
		t.Errorf("bootcmd[0] carries another plan (%v)", err)
	}
	var pl plan.Plan
	if err := json.Unmarshal(res.PlanJSON, &pl); err != nil {
		t.Fatalf("plan JSON: %v", err)
	}
	if pl.Accounts.Admin != m.AdminUser || pl.InstanceID != m.InstanceID || pl.Profile != p.Metadata.Name {
		t.Errorf("plan accounts/instance/profile %+v %q %q", pl.Accounts, pl.InstanceID, pl.Profile)
	}
	if run, _ := ud["runcmd"].([]any); len(run) != 1 {
		t.Errorf("runcmd %v", ud["runcmd"])
	}

	pkgs, _ := ud["packages"].([]any)
	wantPkgs := append([]string{"nftables", "fail2ban", "python3-systemd", "unattended-upgrades"}, p.Packages...)
	if fmt.Sprint(pkgs) != fmt.Sprint(wantPkgs) {
		t.Errorf("packages %v, want %v", pkgs, wantPkgs)
	}

	wf, _ := ud["write_files"].([]any)
	if len(wf) != 1 {
		t.Fatalf("write_files %v", ud["write_files"])
	}
	w, _ := wf[0].(map[string]any)
	if got := slices.Sorted(maps.Keys(w)); !slices.Equal(got, []string{"content", "owner", "path", "permissions"}) {
		t.Errorf("write_files[0] keys %v", got)
	}
	if w["path"] != "/etc/apt/keyrings/hardbake-mirror.asc" || w["content"] != strings.TrimSpace(p.Updates.Mirror.Key)+"\n" {
		t.Errorf("write_files[0] %q", w)
	}

	apt, _ := ud["apt"].(map[string]any)
	if got := slices.Sorted(maps.Keys(apt)); !slices.Equal(got, []string{"preserve_sources_list", "sources_list"}) {
		t.Errorf("apt keys %v", got)
	}
	list, _ := apt["sources_list"].(string)
	mir := p.Updates.Mirror
	lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
	if len(lines) != 1+len(mir.Suites) || !strings.HasPrefix(lines[0], "# ") {
		t.Errorf("sources_list:\n%s", list)
	}
	for i, l := range lines[1:] {
		want := append([]string{"deb", "[signed-by=/etc/apt/keyrings/hardbake-mirror.asc]", mir.URL, mir.Suites[i]}, mir.Components...)
		if got := strings.Fields(l); !slices.Equal(got, want) {
			t.Errorf("sources.list line %q, want fields %q", l, want)
		}
	}

	var md map[string]any
	if err := yaml.Unmarshal(res.MetaData, &md); err != nil {
		t.Fatalf("meta-data: %v", err)
	}
	if got := slices.Sorted(maps.Keys(md)); !slices.Equal(got, []string{"instance-id", "local-hostname"}) || md["local-hostname"] != m.Hostname || md["instance-id"] != m.InstanceID {
		t.Errorf("meta-data %v", md)
	}

	// Every file has the benign render's lines and directives.
	files, baseFiles := planFiles(res.Plan), planFiles(base.Plan)
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, wantFiles) {
		t.Errorf("plan files %v", got)
	}
	for path, content := range files {
		if got, want := shape(content), shape(baseFiles[path]); !slices.Equal(got, want) {
			t.Errorf("%s changed shape:\n%s\nbenign:\n%s", path, content, baseFiles[path])
		}
	}
	sshd := files["/etc/ssh/sshd_config.d/10-hardbake.conf"]
	for _, d := range []string{"Port ", "PermitRootLogin ", "PasswordAuthentication ", "AllowUsers ", "AllowGroups ", "AuthenticationMethods ", "MaxAuthTries "} {
		if n := countPrefix(sshd, d); n != 1 {
			t.Errorf("sshd drop-in has %d %q lines", n, d)
		}
	}
	if !strings.Contains(sshd, "\nPermitRootLogin no\n") || !strings.Contains(sshd, "\nAllowUsers "+m.AdminUser+" deploy\n") {
		t.Errorf("sshd drop-in:\n%s", sshd)
	}
	jail := files["/etc/fail2ban/jail.local"]
	var sections []string
	for _, l := range strings.Split(jail, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "[") {
			sections = append(sections, strings.TrimSpace(l))
		}
	}
	if !slices.Equal(sections, []string{"[DEFAULT]", "[sshd]", "[recidive]"}) {
		t.Errorf("jail.local sections %v", sections)
	}
	if n := countPrefix(jail, "enabled"); n != 2 {
		t.Errorf("jail.local has %d enabled lines", n)
	}
	v4 := files["/etc/iptables/rules.v4"]
	if countPrefix(v4, "-A INPUT -s ") != 1 || countPrefix(v4, "COMMIT") != 1 || countPrefix(v4, "*") != 1 {
		t.Errorf("rules.v4:\n%s", v4)
	}
	nft := files["/etc/nftables.conf"]
	if strings.Count(nft, "{") != strings.Count(nft, "}") || countPrefix(nft, "ip saddr ") != 1 || countPrefix(nft, "ip6 saddr { ") != 1 {
		t.Errorf("nftables.conf:\n%s", nft)
	}
	if sysctl := files["/etc/sysctl.d/90-hardbake.conf"]; strings.Count(sysctl, " = ") != len(pl.Sysctl.Expect) {
		t.Errorf("sysctl:\n%s", sysctl)
	}
}

// countPrefixCol0 counts lines that start with prefix in column 1.
func countPrefixCol0(content, prefix string) int {
	n := 0
	for _, l := range strings.Split(content, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func TestInjection(t *testing.T) {
	key := injKey(t)
	fields := injFields(key)
	bp, bo := injDocs(fields, nil)
	p, m, base, err := injCompile(bp, bo)
	if err != nil {
		t.Fatalf("benign render: %v", err)
	}
	checkStructure(t, p, m, base, base)

	accepted := map[string]int{}
	for _, f := range fields {
		for _, hostile := range injHostile {
			for _, alone := range []bool{false, true} {
				v := injValue(f, key, hostile, alone)
				t.Run(fmt.Sprintf("%s/%q", f.name, v), func(t *testing.T) {
					pd, od := injDocs(fields, map[string]string{f.name: v})
					p, m, res, err := injCompile(pd, od)
					if err != nil {
						var ie *config.InputError
						if !errAs(err, &ie) {
							t.Fatalf("not an input error: %v", err)
						}
						for _, fe := range ie.Errs {
							if fe.Path != f.path {
								t.Errorf("error names %q, want %q: %v", fe.Path, f.path, fe)
							}
						}
						return
					}
					if !f.accept {
						t.Errorf("%s accepted %q", f.path, v)
					}
					accepted[f.name]++
					checkStructure(t, p, m, res, base)
					switch f.name {
					case "KEYLINE":
						if m.Keys[0].Line != strings.TrimSpace(v) {
							t.Errorf("key line %q, want %q", m.Keys[0].Line, strings.TrimSpace(v))
						}
					case "DESCRIPTION":
						if p.Metadata.Description != v {
							t.Errorf("description %q", p.Metadata.Description)
						}
					}
				})
			}
		}
	}
	// The tables must exercise the accepting path too, or the structure
	// checks above prove nothing.
	for _, name := range []string{"KEYLINE", "DESCRIPTION", "MIRRORKEY"} {
		if accepted[name] == 0 {
			t.Errorf("no hostile %s value was accepted; the structure checks never ran for it", name)
		}
	}
}

// TestYAMLCommentKeyRoundTrip: a key whose comment is all YAML syntax is
// accepted and reaches the user-data byte for byte.
func TestYAMLCommentKeyRoundTrip(t *testing.T) {
	key := injKey(t)
	fields := injFields(key)
	_, _, base, err := injCompile(injDocs(fields, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, comment := range []string{
		`: {x} [y] # "z" 'q' &a *b !tag |`,
		`- item`, `? key`, `>- folded`, `%YAML 1.2`, `--- doc`, `... end`, `@at`, "`tick`",
		`$(reboot) ${HOME} ;|&`, `"unbalanced`, `'unbalanced`, `\n literally`,
		"tab\there", "naïve café 🔑", "#not-a-comment", "null", "true", "0x1F", "~",
	} {
		line := key + " " + comment
		p, m, res, err := injCompile(injDocs(fields, map[string]string{"KEYLINE": line}))
		if err != nil {
			t.Errorf("%q refused: %v", comment, err)
			continue
		}
		checkStructure(t, p, m, res, base)
		var ud struct {
			Users []struct {
				Keys []string `yaml:"ssh_authorized_keys"`
			} `yaml:"users"`
		}
		if err := yaml.Unmarshal(res.UserData, &ud); err != nil {
			t.Fatal(err)
		}
		if len(ud.Users) != 1 || len(ud.Users[0].Keys) != 1 || ud.Users[0].Keys[0] != line {
			t.Errorf("key did not round-trip:\n got %q\nwant %q", ud.Users, line)
		}
	}
}

func errAs(err error, target **config.InputError) bool {
	ie, ok := err.(*config.InputError)
	if ok {
		*target = ie
	}
	return ok
}
