package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The value rules. Each returns nil or a reason phrased to follow the key
// path ("ssh.port: must be …"). Every value that reaches a rendered file or
// the user-data passes one of these first, so none can add a line or a key.

// Patterns avoid counted repetition ({0,127}): Go's regexp compiles it by
// copying the sub-expression, which made these few patterns cost 2 ms and
// 8,000 allocations at every start of the CLI. Lengths are checked apart.
var (
	userNameRE  = bounded(`^[a-z_][a-z0-9_-]*$`, 1, 32)
	profileRE   = bounded(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`, 1, 63)
	packageRE   = bounded(`^[a-z0-9][a-z0-9+.-]+$`, 2, 100)
	suiteRE     = bounded(`^(\$RELEASE|[a-z0-9][a-z0-9.]*)(-[a-z0-9]+)*$`, 1, 200)
	componentRE = bounded(`^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)?$`, 1, 200)
	shellRE     = bounded(`^/[A-Za-z0-9_./-]+$`, 2, 101)
	durationRE  = bounded(`^([0-9]+)([smhdw])$`, 2, 7)
	rebootRE    = bounded(`^([01][0-9]|2[0-3]):[0-5][0-9]$`, 5, 5)
	instanceRE  = bounded(`^[A-Za-z0-9][A-Za-z0-9._-]*$`, 1, 128)
	labelRE     = bounded(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`, 1, 63)
	pwHashRE    = pwHashPattern{bounded(`^\$(6|5|y|gy|2b)\$([A-Za-z0-9./$=]+)$`, 1, 300)}
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

// pwHashPattern accepts $ID$ followed by 8–200 hash characters.
type pwHashPattern struct{ boundedPattern }

func (p pwHashPattern) MatchString(s string) bool {
	m := p.FindStringSubmatch(s)
	return m != nil && len(m[2]) >= 8 && len(m[2]) <= 200
}

// reservedUsers are accounts a Debian or Ubuntu image (or a common service
// package) already owns; an admin user with one of these names would hijack
// a system account.
var reservedUsers = map[string]bool{
	"root": true, "daemon": true, "bin": true, "sys": true, "sync": true, "games": true,
	"man": true, "lp": true, "mail": true, "news": true, "uucp": true, "proxy": true,
	"www-data": true, "backup": true, "list": true, "irc": true, "gnats": true,
	"nobody": true, "nogroup": true, "sshd": true, "messagebus": true, "syslog": true,
	"uuidd": true, "tcpdump": true, "tss": true, "landscape": true, "pollinate": true,
	"polkitd": true, "usbmux": true, "dnsmasq": true, "lxd": true, "ntp": true,
	"postfix": true, "fwupd-refresh": true, "statd": true, "avahi": true, "colord": true,
	"geoclue": true, "rtkit": true, "mysql": true, "postgres": true, "redis": true,
	"nginx": true, "admin-root": true, "operator": true, "halt": true, "shutdown": true,
	"ftp": true, "sudo": true, "adm": true, "wheel": true, "staff": true, "users": true,
	"cloud-init": true, "debian-exim": true, "dhcpcd": true, "systemd": true,
}

func checkUserName(s string) string {
	switch {
	case !userNameRE.MatchString(s):
		return fmt.Sprintf("%q is not a valid user name (want ^[a-z_][a-z0-9_-]{0,31}$)", s)
	case reservedUsers[s] || strings.HasPrefix(s, "systemd-") || strings.HasPrefix(s, "_"):
		return fmt.Sprintf("%q is root or a system account; choose another name", s)
	}
	return ""
}

func checkGroupName(s string) string {
	if !userNameRE.MatchString(s) {
		return fmt.Sprintf("%q is not a valid group name (want ^[a-z_][a-z0-9_-]{0,31}$)", s)
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
// 253 characters in all.
func checkHostname(s string) string {
	if s == "" || len(s) > 253 {
		return fmt.Sprintf("%q is not a valid hostname (1–253 characters)", s)
	}
	for _, label := range strings.Split(s, ".") {
		if !labelRE.MatchString(label) {
			return fmt.Sprintf("%q is not a valid hostname (RFC 1123: labels of letters, digits and inner hyphens, 1–63 characters)", s)
		}
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
// "1d", "1w") into seconds.
func parseDuration(s string) (int, string) {
	m := durationRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Sprintf("%q is not a duration (a number and one of s, m, h, d, w: e.g. 10m)", s)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]int{"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m[2]]
	return n * unit, ""
}

func checkDurationRange(s string, min, max time.Duration) string {
	secs, reason := parseDuration(s)
	if reason != "" {
		return reason
	}
	// Compare in seconds: up to 999999w overflows a time.Duration.
	if secs < int(min/time.Second) || secs > int(max/time.Second) {
		return fmt.Sprintf("%s is outside %s–%s", s, min, max)
	}
	return ""
}

// checkURL accepts absolute http(s) URLs with a host and nothing that could
// end a line or a field in sources.list or a shell argument.
func checkURL(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e }) {
		return fmt.Sprintf("%q contains spaces, control or non-ASCII characters", s)
	}
	if strings.ContainsAny(s, "'\"`$\\[]<>{}|^") {
		return fmt.Sprintf("%q contains characters not allowed in a mirror URL", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("%q must be an http or https URL", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Sprintf("%q has no host", s)
	}
	if strings.ContainsAny(s, "?#") { // also a bare "?" or "#": '#' starts a comment in sources.list
		return fmt.Sprintf("%q must not have a query or fragment", s)
	}
	return ""
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

// checkArmoredKey accepts one ASCII-armoured OpenPGP public key block of
// printable ASCII lines.
func checkArmoredKey(s string) string {
	const begin, end = "-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----END PGP PUBLIC KEY BLOCK-----"
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, begin) || !strings.HasSuffix(t, end) {
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
	return ""
}

// parsePortProto reads "443", "443/tcp" or "53/udp".
func parsePortProto(s string) (Service, string) {
	portStr, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return Service{}, fmt.Sprintf("%q: protocol must be tcp or udp", s)
	}
	p, err := strconv.Atoi(portStr)
	if err != nil || p < 1 || p > 65535 {
		return Service{}, fmt.Sprintf("%q: want PORT[/tcp|/udp] with PORT 1–65535", s)
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
