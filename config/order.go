package config

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Order is the data of one VPS order. It is read from YAML or JSON (JSON is
// YAML) and can be overridden by command-line flags.
type Order struct {
	Hostname          string   `yaml:"hostname" doc:"Hostname (RFC 1123); its last label is not all digits (it would read as an IP address)." required:"true"`
	InstanceID        string   `yaml:"instance_id" doc:"cloud-init instance-id; derived from the order when absent."`
	AdminUser         string   `yaml:"admin_user" doc:"Admin user name; the profile's admin.name when absent. Not root, nor a user or group Debian and Ubuntu images already have, nor one of the profile's admin.groups."`
	AdminPasswordHash string   `yaml:"admin_password_hash" doc:"crypt(3) hash of the admin's sudo password; required with admin.sudo: password, refused otherwise."`
	SSHKeys           []string `yaml:"ssh_keys" doc:"The admin's SSH public keys, one authorized_keys line each." required:"true"`
	SSHPort           PortSpec `yaml:"ssh_port" doc:"SSH port for this machine, overriding the profile's: 1–65535 in plain decimal (not 22, not a declared service port) or random."`
	Allow             []string `yaml:"allow" doc:"Extra inbound ports open to any source, PORT[/tcp|/udp]; not the SSH port, and not a port the profile restricts to source networks."`
}

// Machine is a validated order resolved against a profile: everything the
// generator needs to know about one VPS.
type Machine struct {
	Hostname          string
	InstanceID        string
	AdminUser         string
	AdminPasswordHash string
	Keys              []AuthorizedKey
	SSHPort           PortSpec // zero: take the profile's
	Allow             []Service
}

// AuthorizedKey is one validated SSH public key.
type AuthorizedKey struct {
	Line        string // the authorized_keys line exactly as given (trimmed)
	Type        string
	Fingerprint string // SHA256:…
}

// DecodeOrder decodes an order document without validating it, so flags can
// still override values; call Resolve afterwards.
func DecodeOrder(file string, data []byte) (*Order, *Source, error) {
	var o Order
	src, err := decodeStrict(file, data, &o)
	if err != nil {
		return nil, nil, err
	}
	return &o, src, nil
}

// Resolve validates the order against the profile and returns the machine.
func (o *Order) Resolve(p *Profile, src *Source) (*Machine, error) {
	if src == nil {
		src = NewSource("")
	}
	e := &errList{src: src}
	m := &Machine{
		Hostname:          o.Hostname,
		AdminUser:         o.AdminUser,
		AdminPasswordHash: o.AdminPasswordHash,
		SSHPort:           o.SSHPort,
	}
	if o.Hostname == "" {
		e.add(CodeRequired, "hostname", "required (set it in the order or with --hostname)")
	} else if reason := checkHostname(o.Hostname); reason != "" {
		e.add(CodeInvalidHostname, "hostname", "%s", reason)
	}
	if m.AdminUser == "" && !src.given("admin_user") {
		m.AdminUser = p.Admin.Name
	} else if reason := checkUserName(m.AdminUser); reason != "" {
		e.add(CodeInvalidLoginName, "admin_user", "%s", reason)
	}
	switch {
	case p.Admin.Sudo == "password" && o.AdminPasswordHash == "":
		e.add(CodeRequired, "admin_password_hash", "required: the profile's admin.sudo is password")
	case p.Admin.Sudo != "password" && (o.AdminPasswordHash != "" || src.given("admin_password_hash")):
		e.add(CodeIgnoredField, "admin_password_hash", "given, but the profile's admin.sudo is %s: the hash would be ignored; leave it out or use a profile with admin.sudo: password", p.Admin.Sudo)
	case o.AdminPasswordHash != "" && !pwHashRE.MatchString(o.AdminPasswordHash):
		e.add(CodeInvalidPasswordHash, "admin_password_hash", "must be a crypt(3) hash ($6$…, $y$…), never a plain password")
	}
	if len(o.SSHKeys) == 0 {
		e.add(CodeRequired, "ssh_keys", "at least one SSH public key is required (--ssh-key or --ssh-key-file)")
	}
	for i, line := range o.SSHKeys {
		k, reason := ParseAuthorizedKey(line)
		if reason != "" {
			e.add(CodeInvalidSSHKey, fmt.Sprintf("ssh_keys[%d]", i), "%s", reason)
			continue
		}
		m.Keys = append(m.Keys, k)
	}
	if !o.SSHPort.Random && o.SSHPort.Value != 0 {
		if reason := checkSSHPort(o.SSHPort.Value); reason != "" {
			e.add(CodeInvalidPort, "ssh_port", "%s", reason)
		}
	}
	for i, a := range o.Allow {
		svc, reason := parsePortProto(a)
		if reason != "" {
			e.add(CodeInvalidService, fmt.Sprintf("allow[%d]", i), "%s", reason)
			continue
		}
		m.Allow = append(m.Allow, svc)
	}
	o.checkContradictions(e, p, m)
	if o.InstanceID != "" {
		if reason := checkInstanceID(o.InstanceID); reason != "" {
			e.add(CodeInvalidInstanceID, "instance_id", "%s", reason)
		}
		m.InstanceID = o.InstanceID
	}
	if err := e.err(); err != nil {
		return nil, err
	}
	if m.InstanceID == "" {
		m.InstanceID = deriveInstanceID(m)
	}
	return m, nil
}

// checkContradictions refuses an order whose values contradict each other
// or the profile. Each message names both fields.
func (o *Order) checkContradictions(e *errList, p *Profile, m *Machine) {
	sshPort := 0
	sshField := ""
	switch {
	case m.SSHPort.Value != 0:
		sshPort, sshField = m.SSHPort.Value, "ssh_port"
	case m.SSHPort.IsZero() && !p.SSH.Port.Random:
		sshPort, sshField = p.SSH.Port.Value, "the profile's ssh.port"
	}
	if o.AdminUser != "" {
		for i, g := range p.Admin.Groups {
			if g == o.AdminUser {
				e.add(CodeNameConflict, "admin_user", "%q is also the profile's admin.groups[%d]: cloud-init would create the group first and useradd would then fail", o.AdminUser, i)
			}
		}
	}
	restricted := map[string]int{} // port/proto -> index of a source-restricted profile service
	for i, svc := range p.Firewall.Services {
		key := fmt.Sprintf("%d/%s", svc.Port, svc.Proto)
		if len(svc.Sources) > 0 {
			restricted[key] = i
		}
		if sshField == "ssh_port" && svc.Proto == "tcp" && svc.Port == sshPort {
			e.add(CodePortConflict, "ssh_port", "%d is also the profile's firewall.services[%d].port (tcp); choose another SSH port", sshPort, i)
		}
	}
	for i, a := range o.Allow {
		svc, reason := parsePortProto(a)
		if reason != "" {
			continue // reported already
		}
		path := fmt.Sprintf("allow[%d]", i)
		key := fmt.Sprintf("%d/%s", svc.Port, svc.Proto)
		if j, ok := restricted[key]; ok {
			e.add(CodeWidensRestriction, path, "%s would open firewall.services[%d] to every source, but the profile restricts it to firewall.services[%d].sources; drop it from the order or change the profile", key, j, j)
		}
		if sshPort != 0 && svc.Proto == "tcp" && svc.Port == sshPort {
			e.add(CodePortConflict, path, "%d/tcp is the SSH port (%s), which is always open; remove it from allow", svc.Port, sshField)
		}
	}
}

// deriveInstanceID makes a stable instance-id from what identifies the
// order, so re-rendering the same order gives the same seed.
func deriveInstanceID(m *Machine) string {
	h := sha256.New()
	fmt.Fprintf(h, "hardbake-instance\x00%s\x00%s\x00", m.Hostname, m.AdminUser)
	for _, k := range m.Keys {
		fmt.Fprintf(h, "%s\x00", k.Fingerprint)
	}
	return "hb-" + hex.EncodeToString(h.Sum(nil))[:16]
}

const dsaRefused = "DSA keys are refused (broken and disabled in OpenSSH); use ed25519"

// ParseAuthorizedKey validates one public key line: a single key, no
// options, no certificates, no DSA, RSA of at least 2048 bits.
func ParseAuthorizedKey(line string) (AuthorizedKey, string) {
	line = strings.TrimSpace(line)
	if strings.ContainsFunc(line, func(r rune) bool { return r != '\t' && containsControl(string(r)) }) {
		return AuthorizedKey{}, "must be a single authorized_keys line without control characters"
	}
	// x/crypto/ssh no longer parses DSA keys at all: name them before it
	// would call them "no key found".
	if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "ssh-dss") {
		return AuthorizedKey{}, dsaRefused
	}
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return AuthorizedKey{}, fmt.Sprintf("not an SSH public key: %v", err)
	}
	if len(bytes.TrimSpace(rest)) != 0 || secondKey(comment) {
		return AuthorizedKey{}, "must hold exactly one key"
	}
	if len(options) != 0 {
		return AuthorizedKey{}, "authorized_keys options are not supported; give the bare key"
	}
	if _, isCert := pub.(*ssh.Certificate); isCert {
		return AuthorizedKey{}, "certificates are not supported; give the public key"
	}
	switch pub.Type() {
	case ssh.KeyAlgoDSA:
		return AuthorizedKey{}, dsaRefused
	case ssh.KeyAlgoRSA:
		rsaKey, ok := pub.(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey)
		if !ok || rsaKey.N.BitLen() < 2048 {
			bits := 0
			if ok {
				bits = rsaKey.N.BitLen()
			}
			return AuthorizedKey{}, fmt.Sprintf("RSA key of %d bits is refused (at least 2048; ed25519 preferred)", bits)
		}
	}
	return AuthorizedKey{Line: line, Type: pub.Type(), Fingerprint: ssh.FingerprintSHA256(pub)}, ""
}

// secondKey reports whether a key's comment holds another key ("TYPE
// BASE64"), as when two keys were pasted on one line.
func secondKey(comment string) bool {
	f := strings.Fields(comment)
	for i := 0; i+1 < len(f); i++ {
		if _, err := ssh.ParsePublicKey(decodeBase64(f[i+1])); err == nil {
			return true
		}
	}
	return false
}

func decodeBase64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}

// ParseKeyFile reads an authorized_keys-style file: one key a line, blank
// lines and # comments skipped. Errors name file:line.
func ParseKeyFile(file string, data []byte) ([]string, error) {
	var keys []string
	e := &errList{}
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if _, reason := ParseAuthorizedKey(t); reason != "" {
			e.errs = append(e.errs, &FieldError{File: file, Pos: Pos{Line: i + 1, Col: 1}, Code: CodeInvalidSSHKey, Reason: reason})
			continue
		}
		keys = append(keys, t)
	}
	if len(keys) == 0 && len(e.errs) == 0 {
		e.errs = append(e.errs, &FieldError{File: file, Code: CodeRequired, Reason: "no SSH public key in file"})
	}
	if err := e.err(); err != nil {
		return nil, err
	}
	return keys, nil
}
