package verify

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Category is one of the algorithm lists a server offers.
type Category string

const (
	Kex     Category = "kex"
	HostKey Category = "hostkey"
	Cipher  Category = "cipher"
	MAC     Category = "mac"
)

// Categories in the order they are reported.
var Categories = []Category{Kex, HostKey, Cipher, MAC}

// sshdKeyword is the sshd_config keyword that sets a category's list.
var sshdKeyword = map[Category]string{
	Kex: "kexalgorithms", HostKey: "hostkeyalgorithms", Cipher: "ciphers", MAC: "macs",
}

// Severity of a finding, in ssh-audit's terms.
type Severity string

const (
	SevFail Severity = "fail"
	SevWarn Severity = "warn"
	// SevAccepted: ssh-audit 2.5 (Debian 12) warns, but DESIGN.md accepts
	// it: post-quantum key exchange it calls experimental or does not know.
	SevAccepted Severity = "accepted"
	// SevInfo: a pseudo-algorithm that only signals an extension.
	SevInfo Severity = "info"
)

// Finding is what the audit says about one offered algorithm.
type Finding struct {
	Category  Category `json:"category"`
	Algorithm string   `json:"algorithm"`
	Severity  Severity `json:"severity"`
	Reason    string   `json:"reason"`
}

// rating is a rule of the audit table: a glob over algorithm names.
type rating struct {
	pattern string
	sev     Severity
	reason  string
}

// ratings says what ssh-audit 2.5 fails or warns about (its reasons in
// short), and which names are good. The first matching rule wins; a name
// no rule matches is a warning, as in ssh-audit ("unknown algorithm").
var ratings = map[Category][]rating{
	Kex: {
		{"mlkem768x25519-sha256", SevAccepted, "post-quantum hybrid (unknown to ssh-audit 2.5; accepted)"},
		{"sntrup761x25519-sha512", SevAccepted, "post-quantum hybrid (unknown to ssh-audit 2.5; accepted)"},
		{"sntrup761x25519-sha512@openssh.com", SevAccepted, "post-quantum hybrid (\"experimental\" in ssh-audit 2.5; accepted)"},
		{"curve25519-sha256", "", ""},
		{"curve25519-sha256@libssh.org", "", ""},
		{"diffie-hellman-group14-sha256", "", ""},
		{"diffie-hellman-group16-sha512", "", ""},
		{"diffie-hellman-group18-sha512", "", ""},
		{"diffie-hellman-group-exchange-sha256", "", ""},
		{"ext-info-[cs]", SevInfo, "extension negotiation, not a key exchange"},
		{"kex-strict-[cs]-v00@openssh.com", SevInfo, "strict key exchange (Terrapin countermeasure), not a key exchange"},
		{"diffie-hellman-group1-*", SevFail, "1024-bit modulus"},
		{"diffie-hellman-group-exchange-sha1", SevFail, "SHA-1, unsafe"},
		{"diffie-hellman-group14-sha1", SevWarn, "SHA-1 hash"},
		{"ecdh-sha2-*", SevFail, "NIST/weak elliptic curves"},
		{"rsa1024-sha1", SevFail, "1024-bit modulus, SHA-1"},
		{"gss-group1-*", SevFail, "1024-bit modulus"},
		{"gss-*-sha1-*", SevWarn, "SHA-1 hash"},
	},
	HostKey: {
		{"ssh-ed25519", "", ""},
		{"ssh-ed25519-cert-v01@openssh.com", "", ""},
		{"sk-ssh-ed25519@openssh.com", "", ""},
		{"sk-ssh-ed25519-cert-v01@openssh.com", "", ""},
		{"rsa-sha2-256", "", ""},
		{"rsa-sha2-512", "", ""},
		{"rsa-sha2-256-cert-v01@openssh.com", "", ""},
		{"rsa-sha2-512-cert-v01@openssh.com", "", ""},
		{"ssh-rsa", SevFail, "SHA-1 signatures"},
		{"ssh-rsa-cert-*", SevFail, "SHA-1 signatures"},
		{"ssh-dss*", SevFail, "DSA: 1024-bit, removed since OpenSSH 7.0"},
		{"ecdsa-sha2-nistp*", SevFail, "NIST curves, weak random numbers reveal the key"},
		{"sk-ecdsa-sha2-nistp*", SevFail, "NIST curves"},
		{"x509v3-ecdsa-*", SevFail, "NIST curves"},
		{"x509v3-ssh-dss", SevFail, "DSA"},
		{"x509v3-ssh-rsa", SevFail, "SHA-1 signatures"},
	},
	Cipher: {
		{"chacha20-poly1305@openssh.com", "", ""},
		{"aes128-gcm@openssh.com", "", ""},
		{"aes256-gcm@openssh.com", "", ""},
		{"aes128-ctr", "", ""},
		{"aes192-ctr", "", ""},
		{"aes256-ctr", "", ""},
		{"none", SevFail, "no encryption"},
		{"camellia*-cbc*", SevWarn, "CBC mode"},
		{"*-cbc*", SevFail, "CBC mode"},
		{"3des*", SevFail, "64-bit block, weak cipher"},
		{"des*", SevFail, "weak cipher"},
		{"arcfour*", SevFail, "RC4, weak cipher"},
		{"blowfish*", SevFail, "64-bit block"},
		{"cast128*", SevFail, "64-bit block, deprecated"},
		{"idea*", SevFail, "deprecated"},
		{"serpent*", SevFail, "deprecated"},
		{"twofish*", SevFail, "deprecated"},
	},
	MAC: {
		{"hmac-sha2-256-etm@openssh.com", "", ""},
		{"hmac-sha2-512-etm@openssh.com", "", ""},
		{"umac-128-etm@openssh.com", "", ""},
		{"none", SevFail, "no integrity"},
		{"hmac-md5*", SevFail, "MD5"},
		{"hmac-sha1-96*", SevFail, "SHA-1, 96-bit tag, unsafe"},
		{"hmac-ripemd*", SevFail, "deprecated"},
		{"hmac-sha2-*-96", SevFail, "removed from the specification"},
		{"hmac-sha2-*-96-etm@openssh.com", SevWarn, "96-bit tag"},
		{"hmac-sha1-etm@openssh.com", SevWarn, "SHA-1"},
		{"hmac-sha1", SevWarn, "SHA-1, encrypt-and-MAC"},
		{"umac-64-etm@openssh.com", SevWarn, "64-bit tag"},
		{"umac-32@openssh.com", SevWarn, "64-bit tag, encrypt-and-MAC"},
		{"umac-64@openssh.com", SevWarn, "64-bit tag, encrypt-and-MAC"},
		{"umac-*@openssh.com", SevWarn, "encrypt-and-MAC"},
		{"hmac-sha*", SevWarn, "encrypt-and-MAC"},
	},
}

// Rate returns the audit's finding for one algorithm; an empty severity
// means good.
func Rate(c Category, alg string) Finding {
	for _, r := range ratings[c] {
		if ok, _ := path.Match(r.pattern, alg); ok {
			return Finding{Category: c, Algorithm: alg, Severity: r.sev, Reason: r.reason}
		}
	}
	return Finding{Category: c, Algorithm: alg, Severity: SevWarn, Reason: "unknown algorithm"}
}

// Policy is what a profile's crypto setting requires of the offer.
type Policy struct {
	// Name is the profile's crypto policy: modern, compatible or openssh.
	Name string `json:"name"`
	// Only holds, per category, the exact list the sshd config sets; an
	// offered algorithm outside it violates the policy.
	Only map[Category][]string `json:"only,omitempty"`
	// Removed holds, per category, the sshd config's removal patterns
	// ("KexAlgorithms -ecdh-sha2-*"); an offered match violates the policy.
	Removed map[Category][]string `json:"removed,omitempty"`
	// AllowWarn: ssh-audit warnings do not fail (compatible keeps
	// encrypt-and-MAC MACs). AllowFail: nothing is enforced by rating
	// (openssh keeps OpenSSH's defaults, NIST curves included).
	AllowWarn bool `json:"allow_warn"`
	AllowFail bool `json:"allow_fail"`
}

// PolicyFromSSHD builds the policy from the crypto directives of an sshd
// config (the drop-in a plan carries) and the profile's policy name; an
// empty name is guessed from the directives: explicit lists are modern,
// removal lists compatible, none openssh.
func PolicyFromSSHD(name, config string) Policy {
	p := Policy{Only: map[Category][]string{}, Removed: map[Category][]string{}}
	seen := map[string]bool{}
	for _, line := range strings.Split(config, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		kw := strings.ToLower(f[0])
		if seen[kw] { // sshd keeps the first value it reads
			continue
		}
		seen[kw] = true
		for c, k := range sshdKeyword {
			if k != kw {
				continue
			}
			v := f[1]
			switch v[0] {
			case '-':
				p.Removed[c] = strings.Split(v[1:], ",")
			case '+', '^': // additions to the defaults: nothing to enforce
			default:
				p.Only[c] = strings.Split(v, ",")
			}
		}
	}
	if name == "" {
		switch {
		case len(p.Only) > 0:
			name = "modern"
		case len(p.Removed) > 0:
			name = "compatible"
		default:
			name = "openssh"
		}
	}
	p.Name = name
	switch name {
	case "modern":
	case "openssh":
		p.AllowWarn, p.AllowFail = true, true
	default:
		p.AllowWarn = true
	}
	return p
}

// AuditReport is the audit of one offer against one policy.
type AuditReport struct {
	Policy     Policy    `json:"policy"`
	Findings   []Finding `json:"findings"`   // every fail, warn, accepted and info
	Violations []string  `json:"violations"` // offered against the sshd config's lists
	Failing    []string  `json:"failing"`    // what makes the check fail
}

// Audit rates every offered algorithm and compares the offer with the policy.
func Audit(o *Offer, p Policy) *AuditReport {
	r := &AuditReport{Policy: p}
	lists := map[Category][]string{Kex: o.Kex, HostKey: o.HostKey, Cipher: union(o.Ciphers, o.CiphersC2S), MAC: union(o.MACs, o.MACsC2S)}
	for _, c := range Categories {
		if len(lists[c]) == 0 {
			r.Failing = append(r.Failing, fmt.Sprintf("%s: nothing offered", c))
		}
		for _, alg := range lists[c] {
			f := Rate(c, alg)
			if f.Severity != "" {
				r.Findings = append(r.Findings, f)
			}
			if (f.Severity == SevFail && !p.AllowFail) || (f.Severity == SevWarn && !p.AllowWarn) {
				r.Failing = append(r.Failing, fmt.Sprintf("[%s] %s %s: %s", f.Severity, c, alg, f.Reason))
			}
			if f.Severity == SevInfo {
				continue // pseudo-algorithms are never in an sshd list
			}
			if only, ok := p.Only[c]; ok && !matchAny(only, alg) {
				v := fmt.Sprintf("%s %s not in the policy's %s list", c, alg, sshdKeyword[c])
				r.Violations = append(r.Violations, v)
				r.Failing = append(r.Failing, v)
			}
			if removed := p.Removed[c]; matchAny(removed, alg) {
				v := fmt.Sprintf("%s %s offered although the policy removes it", c, alg)
				r.Violations = append(r.Violations, v)
				r.Failing = append(r.Failing, v)
			}
		}
	}
	return r
}

// OK reports whether the offer passes the policy.
func (r *AuditReport) OK() bool { return len(r.Failing) == 0 }

// Summary is a one-line account of the audit for the evidence column.
func (r *AuditReport) Summary() string {
	if !r.OK() {
		return fmt.Sprintf("policy %s: %s", r.Policy.Name, strings.Join(r.Failing, "; "))
	}
	var notes []string
	for _, f := range r.Findings {
		switch f.Severity {
		case SevAccepted:
			notes = append(notes, f.Algorithm+" accepted")
		case SevWarn, SevFail:
			notes = append(notes, fmt.Sprintf("[%s] %s tolerated by the policy", f.Severity, f.Algorithm))
		}
	}
	s := fmt.Sprintf("policy %s: no failing algorithm", r.Policy.Name)
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, ", ") + ")"
	}
	return s
}

// matchAny matches alg against sshd-style glob patterns.
func matchAny(patterns []string, alg string) bool {
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, alg); ok {
			return true
		}
	}
	return false
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
