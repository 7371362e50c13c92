package render

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/templates"
)

// cloudConfig is the #cloud-config document. Field order is output order.
type cloudConfig struct {
	Bootcmd        []any       `yaml:"bootcmd"`
	Users          []user      `yaml:"users"`
	DisableRoot    bool        `yaml:"disable_root"`
	SSHPwauth      bool        `yaml:"ssh_pwauth"`
	SSHGenkeytypes []string    `yaml:"ssh_genkeytypes"`
	WriteFiles     []writeFile `yaml:"write_files,omitempty"`
	Apt            *aptConfig  `yaml:"apt,omitempty"`
	PackageUpdate  bool        `yaml:"package_update"`
	PackageUpgrade bool        `yaml:"package_upgrade"`
	Packages       []string    `yaml:"packages,omitempty"`
	Runcmd         [][]string  `yaml:"runcmd"`
}

type user struct {
	Name              string   `yaml:"name"`
	Shell             string   `yaml:"shell"`
	Groups            []string `yaml:"groups,omitempty"`
	Sudo              string   `yaml:"sudo"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	Passwd            string   `yaml:"passwd,omitempty"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
}

type aptConfig struct {
	PreserveSourcesList bool   `yaml:"preserve_sources_list"`
	SourcesList         string `yaml:"sources_list"`
}

// reportEndpointDoc is the file at plan.ReportEndpointPath, read by the
// agent's sender (agent.PostPy).
type reportEndpointDoc struct {
	URL     string `json:"url"`
	OrderID string `json:"order_id"`
	Key     string `json:"key"`
}

type metaData struct {
	InstanceID    string `yaml:"instance-id"`
	LocalHostname string `yaml:"local-hostname"`
}

const (
	mirrorKeyPath  = "/etc/apt/keyrings/hardbake-mirror.asc"
	embeddedAgent  = "/run/hardbake-firstboot.gz"
	maxArgBytes    = 128 * 1024 // Linux MAX_ARG_STRLEN: one argv string
	embedLineWidth = 76
)

// hostKeyTypes are the host keys cloud-init generates: those the crypto
// policy lets sshd offer. cloud-init 22.x (Debian 12) also makes DSA and
// ECDSA keys by default; a key sshd never serves is only clutter in
// /etc/ssh and in the report, and costs key generation time at first boot.
func hostKeyTypes(crypto string) []string {
	if crypto == "openssh" {
		return []string{"ed25519", "ecdsa", "rsa"}
	}
	// compatible and modern drop ECDSA host keys.
	return []string{"ed25519", "rsa"}
}

// launcherName is the launcher's $0 in bootcmd, and how LauncherPlanArg
// recognises its entry.
const launcherName = "hardbake-firstboot"

func userData(p *config.Profile, m *config.Machine, a Agent, planJSON []byte, digest string, report *ReportEndpoint) ([]byte, error) {
	planArg, err := PlanArg(planJSON)
	if err != nil {
		return nil, err
	}
	if len(planJSON) >= maxArgBytes || len(planArg) >= maxArgBytes {
		return nil, fmt.Errorf("plan is %d bytes, over the %d-byte limit of one command-line argument", len(planJSON), maxArgBytes)
	}
	cc := cloudConfig{
		DisableRoot:    true,
		SSHPwauth:      false,
		SSHGenkeytypes: hostKeyTypes(p.SSH.Crypto),
		PackageUpdate:  config.Bool(p.Updates.UpgradeOnFirstBoot, true) || len(packages(p)) > 0,
		PackageUpgrade: config.Bool(p.Updates.UpgradeOnFirstBoot, true),
		Packages:       packages(p),
		Runcmd: [][]string{{plan.AgentPath, "apply", "--stage", "late",
			"--plan", plan.PlanPath, "--plan-sha256", digest}},
	}
	if p.System.FileIntegrity {
		cc.Runcmd = append(cc.Runcmd, []string{"systemctl", "enable", "--now", "--no-block", aideInitUnit, aideCheckTimer})
	}
	if p.System.PackageIntegrity {
		cc.Runcmd = append(cc.Runcmd, []string{"systemctl", "enable", "--now", "--no-block", debsumsCheckTimer})
	}
	if p.System.HideProcesses {
		// The agent put /proc's hidepid option in fstab in its early
		// stage; mount reads it from there.
		cc.Runcmd = append(cc.Runcmd, []string{"mount", "-o", "remount", "/proc"})
	}

	// The agent's launcher is the first bootcmd entry: it runs before sshd
	// starts. Data travels as arguments, never spliced into the script.
	source := a.Source()
	if a.Kind == AgentEmbed {
		chunk, err := embedChunk(a.Binary)
		if err != nil {
			return nil, err
		}
		cc.Bootcmd = append(cc.Bootcmd, chunk)
		source = embeddedAgent
	}
	launcher := []string{"sh", "-c", launcherScriptPlaceholder, launcherName,
		string(a.Kind), source, a.SHA256, planArgPlaceholder, digest}
	cc.Bootcmd = append(cc.Bootcmd, launcher)

	if report != nil {
		// Root-only, beside the plan; write_files runs right after
		// bootcmd, long before the late stage sends the report.
		ep, err := json.Marshal(reportEndpointDoc{URL: report.URL, OrderID: report.OrderID(), Key: report.Key})
		if err != nil {
			return nil, fmt.Errorf("report endpoint: %w", err)
		}
		cc.WriteFiles = append(cc.WriteFiles, writeFile{Path: plan.ReportEndpointPath,
			Content: string(ep) + "\n", Owner: "root:root", Permissions: "0600"})
	}

	u := user{
		Name:              m.AdminUser,
		Shell:             p.Admin.Shell,
		Groups:            p.Admin.Groups,
		Sudo:              "ALL=(ALL) NOPASSWD:ALL",
		LockPasswd:        true,
		SSHAuthorizedKeys: make([]string, len(m.Keys)),
	}
	if p.Admin.Sudo == "password" {
		u.Sudo, u.LockPasswd, u.Passwd = "ALL=(ALL) ALL", false, m.AdminPasswordHash
	}
	for i, k := range m.Keys {
		u.SSHAuthorizedKeys[i] = k.Line
	}
	cc.Users = []user{u}

	if mir := p.Updates.Mirror; mir != nil {
		sd := sourcesData{Profile: p.Metadata.Name, URL: mir.URL, Suites: mir.Suites, Components: mir.Components, SecurityURL: mir.SecurityURL}
		if mir.Key != "" {
			sd.KeyPath = mirrorKeyPath
			// write_files runs in the init stage, before apt is configured.
			cc.WriteFiles = append(cc.WriteFiles, writeFile{Path: mirrorKeyPath,
				Content: strings.TrimSpace(mir.Key) + "\n", Owner: "root:root", Permissions: "0644"})
		}
		list, err := templates.Render("sources.list.tmpl", sd)
		if err != nil {
			return nil, err
		}
		cc.Apt = &aptConfig{PreserveSourcesList: false, SourcesList: list}
	}

	header := fmt.Sprintf("#cloud-config\n# hardbake: profile %s, instance %s, plan sha256 %s\n", p.Metadata.Name, m.InstanceID, digest)
	out, err := encodeUserData(header, cc, launcher, planArg)
	if err != nil {
		return nil, fmt.Errorf("user-data: %w", err)
	}
	return out, nil
}

// encodeUserData writes the user-data: header, then cc, whose launcher
// entry holds the placeholders for the script and the plan argument.
// Those two are most of the bytes, and the YAML encoder looks at every
// character of every scalar to choose its style; for these two the
// outcome is known, so they are spliced into the encoded document. The
// bytes are those of encoding the real values (TestSpliceUserData, the
// golden files); when a placeholder is not where and as often as
// expected (a profile value carries one), the real values are encoded.
func encodeUserData(header string, cc cloudConfig, launcher []string, planArg string) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(planArg) + 8192)
	buf.WriteString(header)
	if err := marshalTo(&buf, cc); err != nil {
		return nil, err
	}
	if script, err := launcherScriptYAML(); err == nil {
		out, ok := spliceOnce(buf.Bytes(), launcherScriptAt+launcherScriptPlaceholder+"\n", launcherScriptAt+string(script))
		if ok {
			if out, ok = splicePlainScalar(out, planArgPlaceholder, planArg); ok {
				return out, nil
			}
		}
	}
	launcher[2], launcher[7] = templates.Bootcmd(), planArg
	buf.Reset()
	buf.WriteString(header)
	if err := marshalTo(&buf, cc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// launcherScriptPlaceholder stands for the launcher script while the
// user-data is encoded. The script is the same in every user-data, and
// so is its place: the third item of a bootcmd entry, after the line
// launcherScriptAt ends with. yaml.v3 writes it there as a literal block
// (launcherScriptYAML), the same bytes every time.
const (
	launcherScriptPlaceholder = "HARDBAKELAUNCHERSCRIPTPLACEHOLDER"
	launcherScriptAt          = "\n    - -c\n    - "
)

// launcherScriptYAML is the launcher script as yaml.v3 writes it after
// launcherScriptAt: the literal block from its "|" to the end of its last
// line. Made once: the script is a constant.
var launcherScriptYAML = sync.OnceValues(func() ([]byte, error) {
	const end = "HARDBAKEEND"
	var buf bytes.Buffer
	if err := marshalTo(&buf, cloudConfig{Bootcmd: []any{[]string{"sh", "-c", templates.Bootcmd(), end}}}); err != nil {
		return nil, err
	}
	doc := buf.Bytes()
	i := bytes.Index(doc, []byte(launcherScriptAt))
	j := bytes.Index(doc, []byte("\n    - "+end+"\n"))
	if i < 0 || j < i+len(launcherScriptAt) || doc[i+len(launcherScriptAt)] != '|' {
		return nil, errors.New("launcher script: not a literal block where expected")
	}
	return doc[i+len(launcherScriptAt) : j+1], nil
})

// spliceOnce replaces the one occurrence of old in doc by new; ok is
// false (doc untouched) when old is not there exactly once.
func spliceOnce(doc []byte, old, new string) (out []byte, ok bool) {
	at := bytes.Index(doc, []byte(old))
	if at < 0 || bytes.Contains(doc[at+len(old):], []byte(old)) {
		return doc, false
	}
	out = make([]byte, 0, len(doc)-len(old)+len(new))
	out = append(out, doc[:at]...)
	out = append(out, new...)
	return append(out, doc[at+len(old):]...), true
}

// planArgPlaceholder stands for the plan argument while the user-data is
// encoded; splicePlainScalar puts the argument in its place. The plan
// argument is half the user-data's bytes, and the YAML encoder looks at
// every character of every scalar to choose its style: for this one the
// choice is known. Like the argument, the placeholder is a plain scalar
// ("gz:" and base64 characters), so both are written the same way, as
// the scalar itself with nothing around it on its line.
const planArgPlaceholder = "gz:HARDBAKEPLANARGUMENTPLACEHOLDER"

// splicePlainScalar replaces the one occurrence of placeholder in doc by
// value, when value is "gz:" and base64: what yaml.v3 writes as a plain
// scalar, unquoted, never folded (its line width is unlimited), and
// never taken for another type. ok is false (and doc untouched) when the
// placeholder is not there exactly once or value is not of that form.
func splicePlainScalar(doc []byte, placeholder, value string) (out []byte, ok bool) {
	b64, found := strings.CutPrefix(value, planArgPrefix)
	if !found || len(b64) == 0 {
		return doc, false
	}
	for i := 0; i < len(b64); i++ {
		c := b64[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return doc, false
		}
	}
	return spliceOnce(doc, placeholder, value)
}

// packages lists what the machine installs at first boot, in a fixed order.
func packages(p *config.Profile) []string {
	var pkgs []string
	if config.Bool(p.Firewall.Enabled, true) {
		if p.Firewall.Backend == "iptables" {
			pkgs = append(pkgs, "iptables")
		} else {
			pkgs = append(pkgs, "nftables")
		}
	}
	if config.Bool(p.Fail2ban.Enabled, true) {
		// python3-systemd: fail2ban's journal backend (Debian 12 has no auth.log).
		pkgs = append(pkgs, "fail2ban", "python3-systemd")
	}
	if config.Bool(p.Updates.Unattended.Enabled, true) {
		pkgs = append(pkgs, "unattended-upgrades")
	}
	pkgs = appendUnique(pkgs, systemPackages(p.System)...)
	return appendUnique(pkgs, p.Packages...)
}

// embedChunk is a bootcmd entry that unpacks the gzip'd agent from a
// here-document. Only base64 text is spliced in, and base64 has no
// character the shell or the here-document delimiter treats specially.
func embedChunk(binary []byte) (string, error) {
	gz, err := gzipBytes(binary)
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString(gz)
	var b strings.Builder
	fmt.Fprintf(&b, "base64 -d > %s <<'HARDBAKE_AGENT'\n", embeddedAgent)
	for len(b64) > embedLineWidth {
		b.WriteString(b64[:embedLineWidth])
		b.WriteByte('\n')
		b64 = b64[embedLineWidth:]
	}
	b.WriteString(b64)
	b.WriteString("\nHARDBAKE_AGENT\n")
	return b.String(), nil
}

// gzipWriters holds idle BestCompression writers. A new one allocates and
// zeroes about a megabyte of tables, most of the cost of compressing a
// plan; Reset makes a used one equivalent to a new one (same level, empty
// header, no history), so which writer a call gets never changes a byte of
// output: the pool is a cache of allocations, not state.
var gzipWriters = sync.Pool{New: func() any {
	zw, err := gzip.NewWriterLevel(nil, gzip.BestCompression)
	if err != nil {
		panic(err) // a constant, valid level
	}
	return zw
}}

// gzipBytes compresses deterministically: no name, no timestamp.
func gzipBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(data)/2 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(data); err != nil {
		return nil, fmt.Errorf("gzip agent: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip agent: %w", err)
	}
	return buf.Bytes(), nil
}

func marshalTo(buf *bytes.Buffer, v any) error {
	enc := yaml.NewEncoder(buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
}

func metaDataDoc(m *config.Machine) ([]byte, error) {
	var buf bytes.Buffer
	if err := marshalTo(&buf, metaData{InstanceID: m.InstanceID, LocalHostname: m.Hostname}); err != nil {
		return nil, fmt.Errorf("meta-data: %w", err)
	}
	return buf.Bytes(), nil
}

// networkConfigDoc is a version 2 network config: DHCP on every Ethernet
// interface, IPv4 and IPv6.
func networkConfigDoc() ([]byte, error) {
	type match struct {
		Name string `yaml:"name"`
	}
	type ethernet struct {
		Match match `yaml:"match"`
		DHCP4 bool  `yaml:"dhcp4"`
		DHCP6 bool  `yaml:"dhcp6"`
	}
	doc := struct {
		Version   int                 `yaml:"version"`
		Ethernets map[string]ethernet `yaml:"ethernets"`
	}{2, map[string]ethernet{"primary": {Match: match{Name: "e*"}, DHCP4: true, DHCP6: true}}}
	var buf bytes.Buffer
	if err := marshalTo(&buf, doc); err != nil {
		return nil, fmt.Errorf("network-config: %w", err)
	}
	return buf.Bytes(), nil
}
