package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// The value rules. Each returns nil or a reason phrased to follow the key
// path ("ssh.port: must be …"). Every value that reaches a rendered file or
// the user-data passes one of these first, so none can add a line or a key.
// The JSON Schema is generated from the same rules (see fieldRules).

// Patterns avoid counted repetition ({0,127}): Go's regexp compiles it by
// copying the sub-expression, which made these few patterns cost 2 ms and
// 8,000 allocations at every start of the CLI. Lengths are checked apart.
var (
	userNameRE   = bounded(`^[a-z_][a-z0-9_-]*$`, 1, 32)
	profileRE    = bounded(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`, 1, 63)
	packageRE    = bounded(`^[a-z0-9][a-z0-9+.-]*[a-z0-9+]$`, 2, 100)
	suiteRE      = bounded(`^(\$RELEASE|[a-z0-9][a-z0-9.]*)(-[a-z0-9]+)*$`, 1, 200)
	componentRE  = bounded(`^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)?$`, 1, 200)
	rebootRE     = bounded(`^(none|([01][0-9]|2[0-3]):[0-5][0-9])$`, 4, 5)
	instanceRE   = bounded(`^[A-Za-z0-9][A-Za-z0-9._-]*$`, 1, 128)
	labelRE      = bounded(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`, 1, 63)
	pwHashRE     = pwHashPattern{bounded(`^\$(6|5|y|gy|2b)\$([A-Za-z0-9./$=]+)$`, 1, 300)}
	bannerRE     = bounded("^[^\\x00-\\x1f\\x7f-\\x9f\u2028\u2029\\\\]*$", 0, 2000)
	oneLineRE    = bounded("^[^\\x00-\\x1f\\x7f-\\x9f\u2028\u2029]*$", 0, 800) // length in runes is checked apart
	durationRE   = regexp.MustCompile(`^([0-9]+)([smhdw])$`)
	allDigitsRE  = regexp.MustCompile(`^[0-9]+$`)
	mirrorPathRE = regexp.MustCompile(`^(?:[A-Za-z0-9._~!&()*+,;=:/-]|%[0-9A-Fa-f][0-9A-Fa-f])*$`)
)

// boundedPattern is a regular expression plus a length range in bytes.
type boundedPattern struct {
	re       *regexp.Regexp
	min, max int
}

func bounded(expr string, min, max int) boundedPattern {
	return boundedPattern{regexp.MustCompile(expr), min, max}
}

func (b boundedPattern) MatchString(s string) bool {
	return len(s) >= b.min && len(s) <= b.max && b.re.MatchString(s)
}

func (b boundedPattern) FindStringSubmatch(s string) []string {
	if len(s) < b.min || len(s) > b.max {
		return nil
	}
	return b.re.FindStringSubmatch(s)
}

// schema is the pattern's JSON Schema form. The patterns are ASCII-only or
// bound lengths in runes, so minLength/maxLength (counted in code points)
// say the same as the byte lengths above.
func (b boundedPattern) schema() map[string]any {
	s := map[string]any{"type": "string", "pattern": b.re.String(), "maxLength": b.max}
	if b.min > 0 {
		s["minLength"] = b.min
	}
	return s
}

// pwHashPattern accepts $ID$ followed by 8–200 hash characters.
type pwHashPattern struct{ boundedPattern }

func (p pwHashPattern) MatchString(s string) bool {
	m := p.FindStringSubmatch(s)
	return m != nil && len(m[2]) >= 8 && len(m[2]) <= 200
}

// Reserved account names. useradd refuses a user whose name is taken by a
// user, and (with USERGROUPS_ENAB, Debian's and Ubuntu's default) one whose
// name is taken by a group, since it creates a group of the same name:
// cloud-init then logs the failure and goes on, and the machine comes up
// with root locked and no admin. The lists are Debian's base-passwd
// (passwd.master and group.master, bookworm), the users and groups that
// systemd's sysusers and udev rules create, and those that the packages of
// Debian and Ubuntu cloud images (and common service packages) add.
//
// The images' default users (debian, ubuntu) are not reserved: cloud-init
// creates them only for a "default" entry in users, which hardbake never
// writes, so the name is free on a fresh machine.
var reservedUsers = map[string]bool{
	// base-passwd passwd.master
	"root": true, "daemon": true, "bin": true, "sys": true, "sync": true, "games": true,
	"man": true, "lp": true, "mail": true, "news": true, "uucp": true, "proxy": true,
	"www-data": true, "backup": true, "list": true, "irc": true, "gnats": true, "nobody": true,
	// base-passwd group.master
	"adm": true, "tty": true, "disk": true, "kmem": true, "dialout": true, "fax": true,
	"voice": true, "cdrom": true, "floppy": true, "tape": true, "sudo": true, "audio": true,
	"dip": true, "operator": true, "src": true, "shadow": true, "utmp": true, "video": true,
	"sasl": true, "plugdev": true, "staff": true, "users": true, "nogroup": true,
	// systemd, udev
	"input": true, "kvm": true, "render": true, "sgx": true, "wheel": true, "systemd": true,
	// packages of Debian and Ubuntu cloud images
	"sshd": true, "ssh": true, "messagebus": true, "syslog": true, "uuidd": true, "tcpdump": true,
	"tss": true, "landscape": true, "pollinate": true, "polkitd": true, "usbmux": true,
	"dnsmasq": true, "lxd": true, "netdev": true, "crontab": true, "ssl-cert": true,
	"chrony": true, "ntp": true, "ntpsec": true, "fwupd-refresh": true, "cloud-init": true,
	"cloudsdk": true, "google-sudoers": true, "rdma": true, "lpadmin": true, "sambashare": true,
	"bluetooth": true, "docker": true, "mlocate": true, "plocate": true, "postdrop": true,
	"dhcpcd": true, "statd": true, "avahi": true, "colord": true, "geoclue": true, "rtkit": true,
	// common service packages
	"postfix": true, "mysql": true, "postgres": true, "redis": true, "nginx": true,
	"ftp": true, "halt": true, "shutdown": true, "admin-root": true,
}

// reservedPrefixes are name spaces system packages take their accounts from:
// systemd-*, _apt/_chrony/_ssh, Debian-exim (refused anyway: upper case),
// debian-tor and the like.
var reservedPrefixes = []string{"systemd-", "_", "debian-"}

func reservedName(s string) bool {
	if reservedUsers[s] {
		return true
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func checkUserName(s string) string {
	switch {
	case !userNameRE.MatchString(s):
		return fmt.Sprintf("%q is not a valid user name (want ^[a-z_][a-z0-9_-]{0,31}$)", s)
	case reservedName(s):
		return fmt.Sprintf("%q is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name", s)
	}
	return ""
}

func checkGroupName(s string) string {
	if !userNameRE.MatchString(s) {
		return fmt.Sprintf("%q is not a valid group name (want ^[a-z_][a-z0-9_-]{0,31}$)", s)
	}
	return ""
}

// loginShells are the admin shells hardbake accepts: interactive login
// shells that /etc/shells lists and that every Debian (11+) and Ubuntu
// (20.04+) cloud image has before any package is installed (bash and dash
// are Essential; /usr is merged, so both spellings exist). A shell that a
// profile's packages would install arrives only in the final stage, after
// the user was created, and anything else (nologin, false, sync) locks the
// admin out. The agent checks at first boot that the shell exists and is
// executable.
var loginShells = []string{"/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash"}

func checkShell(s string) string {
	if !slices.Contains(loginShells, s) {
		return fmt.Sprintf("%q is not a login shell every Debian and Ubuntu image has (one of %s)", s, strings.Join(loginShells, ", "))
	}
	return ""
}

// takeoverPackages are packages whose installation undoes a measure
// hardbake set up, through apt's own dependency resolution (apt-get -y
// removes what they conflict with) or by taking over a subsystem when they
// start: firewall managers flush or replace the ruleset, other SSH servers
// fight openssh-server for the port, sudo-ldap replaces sudo, other init
// systems replace systemd (whose units the agent relies on).
var takeoverPackages = map[string]string{
	"firewalld": "replaces the firewall ruleset", "ufw": "manages the firewall ruleset",
	"ferm": "replaces the firewall ruleset", "shorewall": "replaces the firewall ruleset",
	"shorewall6": "replaces the firewall ruleset", "arno-iptables-firewall": "replaces the firewall ruleset",
	"fireqos": "replaces the firewall ruleset", "firehol": "replaces the firewall ruleset",
	"iptables-persistent":  "loads its own saved rules over the firewall",
	"netfilter-persistent": "loads its own saved rules over the firewall",
	"sshguard":             "manages firewall bans beside fail2ban",
	"dropbear":             "is another SSH server", "dropbear-bin": "is another SSH server",
	"tinysshd": "is another SSH server", "lsh-server": "is another SSH server",
	"sudo-ldap": "replaces sudo", "opendoas": "is not sudo", "doas": "is not sudo",
	"sysvinit-core": "replaces systemd as init", "runit-init": "replaces systemd as init",
	"openrc": "replaces systemd as init", "s6-linux-init": "replaces systemd as init",
}

// checkPackage accepts a name apt-get install takes as "install this
// package". apt reads more than names: a trailing - removes the package
// (openssh-server- uninstalls sshd), a trailing _ purges it, =VERSION and
// /RELEASE pin, :ARCH qualifies, a trailing ^ is a task, a leading ? or ~ is
// a search pattern, * ? [ ] are globs, a leading - is an option, and a name
// with a . that matches no package is a regular expression (libc6. selects
// some 180 packages). So a name holds only a-z 0-9 + . - (Debian policy),
// starts with a letter or digit and ends with a letter, a digit or + (g++,
// where a trailing + would only say "install" again). What stays: a
// misspelt name with an inner . that no package has is still read as a
// regular expression by apt; it can only install, never remove.
func checkPackage(s string) string {
	if !packageRE.MatchString(s) {
		if len(s) > 1 && packageRE.MatchString(s[:len(s)-1]+"0") {
			switch s[len(s)-1] {
			case '-':
				return fmt.Sprintf("%q is not a package name: apt-get reads the trailing - as \"remove %s\"", s, s[:len(s)-1])
			case '.':
				return fmt.Sprintf("%q is not a package name: apt-get reads a name ending in . as a regular expression", s)
			}
		}
		return fmt.Sprintf("%q is not a Debian package name (2–100 of a-z 0-9 + . -, starting with a letter or digit, not ending in - or .; no =version, /release or :arch)", s)
	}
	if why, bad := takeoverPackages[s]; bad {
		return fmt.Sprintf("%q %s and would undo what the profile hardens; leave it out", s, why)
	}
	return ""
}

func checkPort(p int) string {
	if p < 1 || p > 65535 {
		return fmt.Sprintf("must be 1–65535, not %d", p)
	}
	return ""
}

// checkHostname applies RFC 1123: dot-separated labels of letters, digits
// and hyphens, 1–63 characters each, not starting or ending with a hyphen,
// 253 characters in all; and the last label is not all digits (RFC 1123
// 2.1), so a hostname never reads as an IPv4 address (inet_aton takes
// "1234" and "10.1" as addresses).
func checkHostname(s string) string {
	if s == "" || len(s) > 253 {
		return fmt.Sprintf("%q is not a valid hostname (1–253 characters)", s)
	}
	labels := strings.Split(s, ".")
	for _, label := range labels {
		if !labelRE.MatchString(label) {
			return fmt.Sprintf("%q is not a valid hostname (RFC 1123: labels of letters, digits and inner hyphens, 1–63 characters)", s)
		}
	}
	if allDigitsRE.MatchString(labels[len(labels)-1]) {
		return fmt.Sprintf("%q is not a valid hostname: its last label is all digits, so it reads as an IP address", s)
	}
	return ""
}

func checkInstanceID(s string) string {
	if !instanceRE.MatchString(s) {
		return fmt.Sprintf("%q is not a valid instance-id (letters, digits, '.', '_', '-'; at most 128)", s)
	}
	return ""
}

// parseDuration reads a fail2ban/sshd style duration ("30s", "10m", "1h",
// "1d", "1w") into seconds. The number is read like every other number
// (parseDecimal): no leading zero.
func parseDuration(s string) (int, string) {
	m := durationRE.FindStringSubmatch(s)
	if m == nil || len(s) > 12 {
		return 0, fmt.Sprintf("%q is not a duration (a number and one of s, m, h, d, w: e.g. 10m)", s)
	}
	n, reason := parseDecimal(m[1])
	if reason != "" {
		return 0, fmt.Sprintf("%q is not a duration: %s", s, reason)
	}
	var unit int
	for _, u := range durationUnits {
		if u.unit == m[2] {
			unit = u.secs
		}
	}
	return n * unit, ""
}

func checkDurationRange(s string, min, max time.Duration) string {
	secs, reason := parseDuration(s)
	if reason != "" {
		return reason
	}
	if secs < int(min/time.Second) || secs > int(max/time.Second) {
		return fmt.Sprintf("%s is outside %s–%s", s, min, max)
	}
	return ""
}

// maxMirrorURL bounds a mirror URL; it also bounds its host below the 253
// characters of a hostname, so the schema need not count the host apart.
const maxMirrorURL = 253

// checkURL accepts an absolute URL whose scheme is http or https, spelled
// in lower case, with a valid host (a hostname or an IPv4 address), an
// optional port 1–65535 in plain decimal, a path, and nothing else: no
// credentials (sources.list is world-readable), no query or fragment ('#'
// starts a comment in sources.list), nothing that could end a line or a
// field in sources.list or a shell argument.
func checkURL(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e }) {
		return fmt.Sprintf("%q contains spaces, control or non-ASCII characters", s)
	}
	if len(s) > maxMirrorURL {
		return fmt.Sprintf("URL is %d characters; at most %d", len(s), maxMirrorURL)
	}
	if strings.ContainsAny(s, "'\"`$\\[]<>{}|^") {
		return fmt.Sprintf("%q contains characters not allowed in a mirror URL", s)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return fmt.Sprintf("%q must be an http or https URL (scheme in lower case)", s)
	}
	authority, path, _ := strings.Cut(rest, "/")
	if strings.Contains(rest, "@") {
		if strings.Contains(authority, "@") {
			return fmt.Sprintf("%s holds credentials, which would land in a world-readable sources.list; give the URL without user:password@ and put credentials in /etc/apt/auth.conf.d by other means", strconv.Quote(redactUserinfo(s)))
		}
		return fmt.Sprintf("%q: '@' is not allowed in a mirror URL", s)
	}
	if strings.ContainsAny(s, "?#") { // also a bare "?" or "#"
		return fmt.Sprintf("%q must not have a query or fragment", s)
	}
	host, port, hasPort := strings.Cut(authority, ":")
	if host == "" {
		return fmt.Sprintf("%q has no host", s)
	}
	if reason := checkMirrorHost(host); reason != "" {
		return fmt.Sprintf("%q: %s", s, reason)
	}
	if hasPort {
		n, reason := parseDecimal(port)
		if reason == "" {
			reason = checkPort(n)
		}
		if reason != "" {
			return fmt.Sprintf("%q: port %s", s, reason)
		}
	}
	if !mirrorPathRE.MatchString(path) {
		return fmt.Sprintf("%q: the path may hold only letters, digits, %s and %%XX escapes", s, "._~!&()*+,;=:/-")
	}
	if _, err := url.Parse(s); err != nil { // a second reader agrees it is a URL
		return fmt.Sprintf("%q is not a URL: %v", s, err)
	}
	return ""
}

// CheckAgentURL accepts the URL the machine downloads the agent from: the
// mirror URL's rules (lower-case http or https, a valid host and port, no
// credentials, which would sit in the seed's world-readable user-data),
// except that a query is allowed (pre-signed object-store URLs carry one)
// and the length bound is 2,048.
func CheckAgentURL(s string) string {
	base, query, hasQuery := strings.Cut(s, "?")
	if len(s) > 2048 {
		return fmt.Sprintf("URL is %d characters; at most 2048", len(s))
	}
	if len(base) > maxMirrorURL {
		return fmt.Sprintf("URL before the query is %d characters; at most %d", len(base), maxMirrorURL)
	}
	if reason := checkURL(base); reason != "" {
		return reason
	}
	if hasQuery && !mirrorPathRE.MatchString(strings.ReplaceAll(query, "?", "/")) {
		return fmt.Sprintf("%q: the query may hold only letters, digits, %s and %%XX escapes", s, "._~!&()*+,;=:/?-")
	}
	return ""
}

// checkMirrorHost accepts a hostname whose last label starts with a letter,
// or a dotted-quad IPv4 address. IPv6
// literals are refused: a mirror has a name, and apt's sources.list and
// cloud-init's templating of [v6] brackets are both easy to get wrong.
func checkMirrorHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil && a.Is4() {
		return ""
	}
	if strings.Count(h, ".") == 3 && strings.Trim(h, "0123456789.") == "" {
		return fmt.Sprintf("host %q is not an IPv4 address", h)
	}
	if reason := checkHostname(h); reason != "" {
		return "host " + reason
	}
	// A mirror is reached by a DNS name, whose top-level label starts with
	// a letter; this also keeps "1.2.3" and "10.1" from reading as an
	// address to inet_aton.
	if top := h[strings.LastIndexByte(h, '.')+1:]; top[0] < 'A' || (top[0] > 'Z' && top[0] < 'a') || top[0] > 'z' {
		return fmt.Sprintf("host %q: its last label must start with a letter", h)
	}
	return ""
}

// redactUserinfo replaces the password in a URL's userinfo, so the message
// refusing it does not print the secret.
func redactUserinfo(s string) string {
	scheme, rest, _ := strings.Cut(s, "://")
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":REDACTED@" + rest[at+1:]
}

// checkCIDR accepts a canonical network prefix (no host bits set), so the
// rule says exactly what it allows.
func checkCIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Sprintf("%q is not a CIDR network (e.g. 203.0.113.0/24 or 2001:db8::/32)", s)
	}
	if p.Masked() != p {
		return p, fmt.Sprintf("%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, ""
}

const (
	keyBegin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	keyEnd   = "-----END PGP PUBLIC KEY BLOCK-----"
)

// armorShapeRE is the armoured key's outline: one public key block of
// printable ASCII lines, blank space around it. checkArmoredKey also
// refuses a second BEGIN, which the schema says with a "not".
var armorShapeRE = regexp.MustCompile(`^[\t\n\r ]*` + keyBegin + `[\x20-\x7e\r\n]*` + keyEnd + `[\t\n\r ]*$`)

const armorTwoBlocks = `-----BEGIN[\s\S]*-----BEGIN`

// checkArmoredKey accepts one ASCII-armoured OpenPGP public key block that
// parses as OpenPGP and holds at least one key that can sign: apt must be
// able to verify the mirror with it, which otherwise fails at first boot,
// after the machine is on the network.
func checkArmoredKey(s string) string {
	t := strings.Trim(s, "\t\n\r ")
	if !strings.HasPrefix(t, keyBegin) || !strings.HasSuffix(t, keyEnd) {
		return "must be one ASCII-armoured OpenPGP public key block (BEGIN/END PGP PUBLIC KEY BLOCK)"
	}
	if strings.Count(t, "-----BEGIN") != 1 {
		return "must hold exactly one key block"
	}
	for i, line := range strings.Split(t, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.ContainsFunc(line, func(r rune) bool { return r < ' ' || r > '~' }) {
			return fmt.Sprintf("line %d of the key has control or non-ASCII characters", i+1)
		}
	}
	block, err := armor.Decode(strings.NewReader(t))
	if err != nil {
		return fmt.Sprintf("is not valid ASCII armour: %v", err)
	}
	if block.Type != openpgp.PublicKeyType {
		return fmt.Sprintf("armour holds a %q block, not a public key", block.Type)
	}
	body, err := io.ReadAll(block.Body)
	if err != nil {
		return fmt.Sprintf("is not valid ASCII armour: %v", err)
	}
	// RFC 9580 lets readers skip the armour checksum and go-crypto does;
	// GnuPG 2.2 (Debian 12's apt) refuses a key whose checksum is wrong.
	if sum, ok := armorChecksum(t); ok && sum != crc24(body) {
		return "armour checksum does not match the key (damaged in copying?)"
	}
	entities, err := openpgp.ReadKeyRing(bytes.NewReader(body))
	if err != nil {
		return fmt.Sprintf("is not an OpenPGP public key: %v", err)
	}
	if len(entities) == 0 {
		return "holds no OpenPGP key"
	}
	for _, e := range entities {
		if e.PrivateKey != nil {
			return "holds a private key; give only the public key"
		}
	}
	return ""
}

// parsePortProto reads "443", "443/tcp" or "53/udp"; the port is read by
// parseDecimal like every other number.
func parsePortProto(s string) (Service, string) {
	portStr, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return Service{}, fmt.Sprintf("%q: protocol must be tcp or udp", s)
	}
	p, reason := parseDecimal(portStr)
	if reason == "" {
		reason = checkPort(p)
	}
	if reason != "" {
		return Service{}, fmt.Sprintf("%q: want PORT[/tcp|/udp] with PORT 1–65535 in plain decimal (%s)", s, reason)
	}
	return Service{Port: p, Proto: proto}, ""
}

// DurationSeconds converts a validated duration ("30s", "2m") to seconds.
func DurationSeconds(s string) (int, error) {
	n, reason := parseDuration(s)
	if reason != "" {
		return 0, fmt.Errorf("%s", reason)
	}
	return n, nil
}

// armorChecksum returns the CRC-24 of an armour's "=XXXX" line, if it has one.
func armorChecksum(armored string) (uint32, bool) {
	lines := strings.Split(strings.ReplaceAll(armored, "\r", ""), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if len(l) == 5 && l[0] == '=' {
			b, err := base64.StdEncoding.DecodeString(l[1:])
			if err != nil || len(b) != 3 {
				return 0, false
			}
			return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]), true
		}
	}
	return 0, false
}

// crc24 is OpenPGP's armour checksum (RFC 4880 6.1).
func crc24(data []byte) uint32 {
	const init, poly = 0xB704CE, 0x1864CFB
	crc := uint32(init)
	for _, b := range data {
		crc ^= uint32(b) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= poly
			}
		}
	}
	return crc & 0xFFFFFF
}
