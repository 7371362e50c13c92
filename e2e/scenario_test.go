//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/templates"
	"hardbake.dev/hardbake/verify"
)

// Ports every hardbake scenario forwards besides its SSH port.
const (
	portHTTP      = 8080 // profile service, any source
	portOrder     = 8081 // the order's extra allow
	portRestrict  = 5432 // profile service, only from 203.0.113.0/24
	portForbidden = 9999 // not allowed anywhere
)

// scenario is one guest boot and what it must show.
type scenario struct {
	Name  string
	Image string
	// Kind selects the checks: "full", "fault-sshd", "fault-mirror",
	// "fault-port", "reference", "plain", "verify-image".
	Kind string
	// SSHPort fixes the order's ssh_port; 0 takes the profile's random one.
	SSHPort int
	// Agent is how the guest gets the agent (hardbake iso --agent): "" for
	// the seed file, "url" (from the suite's HTTP server, like the mirror)
	// or "embed" (inside user-data). Fault scenarios carry the other two so
	// every delivery mode boots without adding boots.
	Agent string
	// NoCloudNet boots with no seed disk: the order comes from a hardbaked
	// started for the scenario (PUT profile, POST order, agent: url), by
	// ds=nocloud-net on the kernel command line, and the report goes back
	// to it. The scenario also proves that forged reports are refused and
	// that a cancelled order serves nothing.
	NoCloudNet bool
	// Profile is "" for the suite's profile (profileYAML), or the name of
	// a built-in profile (templates/profiles), booted as it ships apart
	// from the suite's mirror: issue 15's proof that baseline and strict
	// harden a machine, folded into scenarios that boot anyway.
	Profile string
	// UEFI boots the image as a GPT disk with GRUB in an EFI system
	// partition (uefiDisk), with no kernel given to QEMU.
	UEFI bool
	// Weaken is a line put first in the plan's sshd drop-in (sshd takes
	// the first value), and WeakenExpect what the plan then tells the agent
	// to expect of `sshd -T` instead: a weakening the agent verifies as
	// planned. Without WeakenExpect the agent sees the difference and rolls
	// SSH back, which the sshd fault scenario relies on.
	Weaken       string
	WeakenExpect map[string]string
}

// agentURLPath is where the suite's HTTP server serves bin/'s agent.
const agentURLPath = "/agent/hardbake-firstboot-linux-amd64"

func scenarios() []scenario {
	return []scenario{
		{Name: "bookworm", Image: "bookworm", Kind: "full"},
		// Socket-activated SSH, booted by NoCloud-Net from hardbaked.
		// The built-in strict, as it ships.
		{Name: "bookworm-socket", Image: "bookworm-socket", Kind: "full", NoCloudNet: true, Profile: "strict"},
		{Name: "trixie", Image: "trixie", Kind: "full", Profile: "strict"},
		{Name: "trixie-baseline", Image: "trixie", Kind: "full", Profile: "baseline"},
		// Neither nft nor iptables until the package phase: the agent
		// loads the ruleset over netlink (issue 13). The built-in baseline.
		{Name: "bookworm-nofw", Image: noFirewallToolImage, Kind: "full", Profile: "baseline"},
		{Name: "reference", Image: "bookworm", Kind: "reference", SSHPort: 50022},
		// A machine its user set up with nothing but an admin and a key:
		// hardbake verify host must fail it on the right checks (issue 12).
		{Name: "plain-user", Image: "bookworm", Kind: "plain", SSHPort: 50022},
		// hardbake verify image as a user runs it (issue 12): on a disk
		// with a bootloader, booted and rebooted through GRUB; and on the
		// suite's kernel+initrd image with a seed that turns password
		// login on, which must fail no-password-auth and nothing else
		// the weakening does not touch.
		{Name: "verify-image-uefi", Image: "bookworm", Kind: "verify-image", UEFI: true},
		{Name: "verify-image-weak", Image: "bookworm", Kind: "verify-image", Weaken: "PasswordAuthentication yes\nAuthenticationMethods any\n",
			WeakenExpect: map[string]string{"passwordauthentication": "yes", "authenticationmethods": "any"}},
		{Name: "fault-sshd-rejected", Image: "bookworm", Kind: "fault-sshd", Weaken: "KexAlgorithms mlkem768x25519-sha256,curve25519-sha256\n"},
		// No mirror, no download: the agent travels inside user-data.
		{Name: "fault-mirror-down", Image: "bookworm", Kind: "fault-mirror", Agent: "embed"},
		{Name: "fault-port-taken", Image: "bookworm-porttaken", Kind: "fault-port", SSHPort: portTakenPort, Agent: "url"},
	}
}

// profileYAML is the suite's profile: the guide's settings, the strict
// crypto policy, and the hermetic mirror.
func profileYAML(m *mirror) string {
	var key strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(m.KeyASCII), "\n") {
		key.WriteString("      " + l + "\n")
	}
	return `apiVersion: hardbake.dev/v1
kind: Profile
metadata:
  name: e2e
  description: hardbake end-to-end suite (hermetic mirror, strict crypto)
updates:
  upgradeOnFirstBoot: true
  unattended: {enabled: true, reboot: none}
  mirror:
    url: http://` + mirrorGuestAddr + `/debian
    securityURL: http://` + mirrorGuestAddr + `/debian-security
    components: [main]
    key: |
` + key.String() + `ssh:
  port: random
  maxAuthTries: 3
  loginGraceTime: 30s
  crypto: modern
admin: {sudo: nopasswd, shell: /bin/bash}
firewall:
  backend: auto
  services:
    - {port: ` + strconv.Itoa(portHTTP) + `, proto: tcp}
    - {port: ` + strconv.Itoa(portRestrict) + `, proto: tcp, sources: ["203.0.113.0/24"]}
fail2ban:
  enabled: true
  defaults: {bantime: 10m, findtime: 10m, maxretry: 5}
  jails:
    sshd: {maxretry: 3, findtime: 5m, bantime: 30m}
sysctl: {hardening: true}
packages: []
`
}

// scenarioProfile is the profile a scenario boots: its name (the one to
// PUT to hardbaked) and the document. A built-in profile gets the suite's
// mirror under updates (the guests reach nothing else) and nothing more.
func scenarioProfile(sc scenario, m *mirror) (name string, doc []byte, err error) {
	if sc.Profile == "" {
		return "e2e", []byte(profileYAML(m)), nil
	}
	data, ok := templates.Profile(sc.Profile)
	if !ok {
		return "", nil, fmt.Errorf("no built-in profile %q", sc.Profile)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return "", nil, fmt.Errorf("built-in profile %s: %w", sc.Profile, err)
	}
	var mirrorDoc yaml.Node
	mirrorYAML := fmt.Sprintf("url: http://%[1]s/debian\nsecurityURL: http://%[1]s/debian-security\ncomponents: [main]\nkey: %[2]s\n", mirrorGuestAddr, strconv.Quote(m.KeyASCII))
	if err := yaml.Unmarshal([]byte(mirrorYAML), &mirrorDoc); err != nil {
		return "", nil, fmt.Errorf("mirror section: %w", err)
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "updates" {
			upd := top.Content[i+1]
			upd.Content = append(upd.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "mirror"}, mirrorDoc.Content[0])
			out, err := yaml.Marshal(&root)
			return sc.Profile, out, err
		}
	}
	return "", nil, fmt.Errorf("built-in profile %s has no updates section", sc.Profile)
}

// crypto is the ssh.crypto of the profile sc boots.
func (sc scenario) crypto() string {
	if sc.Profile == "baseline" {
		return "compatible"
	}
	return "modern" // the suite's profile and strict
}

// restricted is what the profile sc boots restricts to source networks:
// only the suite's own profile declares services.
func (sc scenario) restricted() []verify.Restricted {
	if sc.Profile != "" {
		return nil
	}
	return []verify.Restricted{{Port: portRestrict, Proto: "tcp", Sources: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}}
}

func orderYAML(sc scenario, key *sshKey) string {
	s := fmt.Sprintf(`hostname: e2e-%s
instance_id: i-e2e-%s
admin_user: admin
ssh_keys:
  - %s
allow: ["%d/tcp"]
`, sc.Name, sc.Name, key.Authorized, portOrder)
	if sc.SSHPort != 0 {
		s += fmt.Sprintf("ssh_port: %d\n", sc.SSHPort)
	}
	return s
}

var sshPortRe = regexp.MustCompile(`ssh port (\d+)`)

// makeSeed runs bin/hardbake to build the seed; for the sshd fault it
// renders a directory seed, injects an sshd setting the guest's OpenSSH
// rejects into the plan, and packs the ISO itself.
func makeSeed(ctx context.Context, root, dir string, sc scenario, m *mirror, key *sshKey) (seed string, port int, err error) {
	prof := filepath.Join(dir, "profile.yaml")
	ord := filepath.Join(dir, "order.yaml")
	_, profDoc, err := scenarioProfile(sc, m)
	if err != nil {
		return "", 0, err
	}
	if err := os.WriteFile(prof, profDoc, 0o644); err != nil {
		return "", 0, fmt.Errorf("write profile: %w", err)
	}
	if err := os.WriteFile(ord, []byte(orderYAML(sc, key)), 0o644); err != nil {
		return "", 0, fmt.Errorf("write order: %w", err)
	}
	bin := filepath.Join(root, "bin", "hardbake")
	if _, err := os.Stat(bin); err != nil {
		return "", 0, fmt.Errorf("%s missing: run `make build` first: %w", bin, err)
	}
	seed = filepath.Join(dir, "seed.iso")
	args := []string{"iso", "--profile", prof, "--order", ord, "-o", seed}
	if sc.Weaken != "" {
		args = []string{"iso", "--profile", prof, "--order", ord, "--format", "dir", "-o", filepath.Join(dir, "seed")}
	}
	switch sc.Agent {
	case "url":
		args = append(args, "--agent", "url=http://"+mirrorGuestAddr+agentURLPath)
	case "embed":
		args = append(args, "--agent", "embed")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", 0, fmt.Errorf("hardbake %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	mm := sshPortRe.FindStringSubmatch(stderr.String())
	if mm == nil {
		return "", 0, fmt.Errorf("hardbake did not say the ssh port: %s", stderr.String())
	}
	port, _ = strconv.Atoi(mm[1])
	if sc.Weaken != "" {
		ud := filepath.Join(dir, "seed", "user-data")
		if err := injectSSHDSetting(ud, sc.Weaken, sc.WeakenExpect); err != nil {
			return "", 0, err
		}
		out, err := exec.CommandContext(ctx, "xorriso", "-as", "mkisofs", "-quiet", "-r", "-V", "cidata", "-o", seed, filepath.Join(dir, "seed")).CombinedOutput()
		if err != nil {
			return "", 0, fmt.Errorf("xorriso: %w: %s", err, out)
		}
	}
	return seed, port, nil
}

// injectSSHDSetting puts line first in the plan's sshd drop-in (sshd takes
// the first value) and re-pins the plan's sha256 in the user-data. It is
// the test-only way to make the guest's `sshd -t` reject the config.
func injectSSHDSetting(userData, line string, expect map[string]string) error {
	data, err := os.ReadFile(userData)
	if err != nil {
		return fmt.Errorf("read user-data: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parse user-data: %w", err)
	}
	planNode, err := render.LauncherPlanArg(&doc)
	if err != nil {
		return fmt.Errorf("%s: %w", userData, err)
	}
	oldJSON, err := render.PlanFromArg(planNode.Value)
	if err != nil {
		return fmt.Errorf("%s: %w", userData, err)
	}
	old := string(oldJSON)
	var p map[string]any
	if err := json.Unmarshal([]byte(old), &p); err != nil {
		return fmt.Errorf("decode plan: %w", err)
	}
	sshSec, _ := p["ssh"].(map[string]any)
	dropIn, _ := sshSec["drop_in"].(map[string]any)
	content, _ := dropIn["content"].(string)
	if content == "" {
		return fmt.Errorf("plan has no ssh.drop_in.content")
	}
	dropIn["content"] = line + content
	if len(expect) > 0 {
		exp, _ := sshSec["expect"].(map[string]any)
		if exp == nil {
			return fmt.Errorf("plan has no ssh.expect")
		}
		for k, v := range expect {
			exp[k] = v
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	// The launcher takes a plain JSON plan as well as a compressed one.
	planNode.Value = buf.String()
	oldSum := sha256.Sum256([]byte(old))
	newSum := sha256.Sum256(buf.Bytes())
	oldHex, newHex := hex.EncodeToString(oldSum[:]), hex.EncodeToString(newSum[:])
	replaced := 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, oldHex) {
			n.Value = strings.ReplaceAll(n.Value, oldHex, newHex)
			replaced++
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	if replaced == 0 {
		return fmt.Errorf("plan sha256 %s not found in user-data", oldHex)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return fmt.Errorf("encode user-data: %w", err)
	}
	return os.WriteFile(userData, append([]byte("#cloud-config\n"), out...), 0o644)
}

// referenceSeed builds the seed for the reference boot: the guide's steps
// as a hand-written plain cloud-config (testdata/reference-user-data.yaml).
func referenceSeed(ctx context.Context, root, dir string, sc scenario, m *mirror, key *sshKey) (string, error) {
	tmpl, err := os.ReadFile(filepath.Join(root, "e2e", "testdata", "reference-user-data.yaml"))
	if err != nil {
		return "", fmt.Errorf("read reference user-data: %w", err)
	}
	var keyIndented strings.Builder
	for i, l := range strings.Split(strings.TrimSpace(m.KeyASCII), "\n") {
		if i > 0 {
			keyIndented.WriteString("\n      ")
		}
		keyIndented.WriteString(l)
	}
	ud := strings.NewReplacer(
		"@ADMIN_KEY@", key.Authorized,
		"@MIRROR_KEY@", keyIndented.String(),
		"@MIRROR_URL@", "http://"+mirrorGuestAddr+"/debian",
		"@RELEASE@", m.Codename,
		"@SSH_PORT@", strconv.Itoa(sc.SSHPort),
	).Replace(string(tmpl))
	udPath := filepath.Join(dir, "user-data")
	mdPath := filepath.Join(dir, "meta-data")
	if err := os.WriteFile(udPath, []byte(ud), 0o644); err != nil {
		return "", fmt.Errorf("write user-data: %w", err)
	}
	md := fmt.Sprintf("instance-id: i-e2e-%s\nlocal-hostname: e2e-%s\n", sc.Name, sc.Name)
	if err := os.WriteFile(mdPath, []byte(md), 0o644); err != nil {
		return "", fmt.Errorf("write meta-data: %w", err)
	}
	seed := filepath.Join(dir, "seed.iso")
	out, err := exec.CommandContext(ctx, "cloud-localds", seed, udPath, mdPath).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cloud-localds: %w: %s", err, out)
	}
	return seed, nil
}

// plainSeed is a seed with only the admin and its key: no hardening.
// order.yaml beside it is the order hardbake verify host is told the
// machine was made from.
func plainSeed(ctx context.Context, dir string, sc scenario, key *sshKey) (string, error) {
	ud := "#cloud-config\nusers:\n  - name: admin\n    shell: /bin/bash\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys:\n      - " + key.Authorized + "\n"
	md := fmt.Sprintf("instance-id: i-e2e-%s\nlocal-hostname: e2e-%s\n", sc.Name, sc.Name)
	files := map[string]string{"user-data": ud, "meta-data": md, "order.yaml": orderYAML(sc, key)}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("write %s: %w", name, err)
		}
	}
	seed := filepath.Join(dir, "seed.iso")
	out, err := exec.CommandContext(ctx, "cloud-localds", seed, filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data")).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cloud-localds: %w: %s", err, out)
	}
	return seed, nil
}

// journalTimeout bounds every wait on the guest.
const (
	// A first boot installs the profile's packages under TCG: the built-in
	// profiles took 5–10 minutes here beside a second guest.
	bootTimeout  = 20 * time.Minute
	loginTimeout = 3 * time.Minute
	// rebootTimeout bounds the login after a reboot: from the kernel's
	// start, networking's DHCP and cloud-init's init stage come before
	// sshd, and with four guests on two cores (a CI run beside an audit)
	// networking.service alone took two minutes.
	rebootTimeout = 8 * time.Minute
	cmdTimeout    = 2 * time.Minute
)
