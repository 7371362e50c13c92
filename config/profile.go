// Package config holds hardbake's inputs — the hardening profile and the VPS
// order — with their strict decoding, defaults and validation. Every front
// end (CLI, service) goes through it, so all of them report the same errors.
// Types carry `doc` tags: the JSON Schema and the profile reference are
// generated from these same types.
package config

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/edge"
)

// APIVersion and KindProfile identify a v1 profile document.
const (
	APIVersion  = "hardbake.dev/v1"
	KindProfile = "Profile"
)

// Profile is a hardening profile: what every VPS built from it must look like.
type Profile struct {
	APIVersion string             `yaml:"apiVersion" doc:"Always hardbake.dev/v1." required:"true" enum:"hardbake.dev/v1"`
	Kind       string             `yaml:"kind" doc:"Always Profile." required:"true" enum:"Profile"`
	Metadata   Metadata           `yaml:"metadata" required:"true"`
	Updates    Updates            `yaml:"updates" doc:"System updates at first boot and afterwards."`
	SSH        SSH                `yaml:"ssh" doc:"The OpenSSH server. Root login, password and keyboard-interactive login are always off."`
	Admin      Admin              `yaml:"admin" doc:"The admin user that replaces root. Its name and keys come from the order."`
	Firewall   Firewall           `yaml:"firewall" doc:"Default-deny inbound firewall for IPv4 and IPv6."`
	Fail2ban   Fail2ban           `yaml:"fail2ban" doc:"Fail2ban bans hosts that fail to log in."`
	Sysctl     Sysctl             `yaml:"sysctl" doc:"Kernel and network sysctl hardening."`
	System     System             `yaml:"system" doc:"Operating-system hardening beyond SSH, the firewall and bans: what auditors' tools (Lynis, CIS benchmarks) check."`
	Edge       *edge.Policy       `yaml:"edge" doc:"The provider's network (edge) firewall: rules that mirror the host firewall, per provider (hardbake edge, GET /v1/orders/ID/edge)."`
	Backup     *edge.BackupPolicy `yaml:"backup" doc:"The provider-side backup policy of every machine (automated backups, a snapshot once the machine is hardened)."`
	Packages   []string           `yaml:"packages" doc:"Extra Debian packages to install at first boot: plain package names (no trailing - or ., =version, /release or :arch, which apt reads as other actions), and none that takes over a measure (firewalld, ufw, dropbear, sudo-ldap, sysvinit-core …)." rule:"package"`
}

// Metadata names the profile.
type Metadata struct {
	Name        string `yaml:"name" doc:"Profile name: lower-case letters, digits and hyphens." required:"true" rule:"profileName"`
	Description string `yaml:"description" doc:"One line saying what the profile is for." rule:"oneLine"`
}

// Updates configures package updates.
type Updates struct {
	UpgradeOnFirstBoot *bool       `yaml:"upgradeOnFirstBoot" doc:"Run apt update and upgrade at first boot." default:"true"`
	Unattended         *Unattended `yaml:"unattended" doc:"Unattended security upgrades afterwards."`
	Mirror             *Mirror     `yaml:"mirror" doc:"An apt mirror that replaces the image's sources (providers run local mirrors)."`
}

// Unattended configures unattended-upgrades.
type Unattended struct {
	Enabled *bool  `yaml:"enabled" doc:"Install and enable unattended-upgrades." default:"true"`
	Reboot  string `yaml:"reboot" doc:"Automatic reboot time when an upgrade needs one, as HH:MM, or none." default:"none" rule:"reboot"`
}

// Mirror is an apt mirror.
type Mirror struct {
	URL         string   `yaml:"url" doc:"Mirror URL: http:// or https:// (lower case), a host name or IPv4 address, an optional port, a path. No user:password@ (sources.list is world-readable), query or fragment." required:"true" rule:"mirrorURL"`
	Suites      []string `yaml:"suites" doc:"Suites to use; $RELEASE is the machine's codename." default:"[\"$RELEASE\", \"$RELEASE-updates\"]" rule:"suite" minItems:"1"`
	Components  []string `yaml:"components" doc:"Archive components." default:"[\"main\"]" rule:"component" minItems:"1"`
	SecurityURL string   `yaml:"securityURL" doc:"The security archive's mirror (Debian: a mirror of debian-security): sources.list gains its $RELEASE-security suite with the same components and key. Without it, and without a -security suite in suites, the machine gets no security updates." rule:"mirrorURL"`
	Key         string   `yaml:"key" doc:"ASCII-armoured OpenPGP public key that signs the mirror; without it the machine's keyring must already trust it. Checked at render time: it must parse as OpenPGP and hold no private key." rule:"armoredKey"`
}

// SSH configures sshd.
type SSH struct {
	Port           PortSpec `yaml:"port" doc:"SSH port: a number (1–65535 in plain decimal, not 22, not a declared service port) or random (chosen in 49152–65535 from the instance-id, skipping declared ports)." default:"random"`
	MaxAuthTries   int      `yaml:"maxAuthTries" doc:"sshd MaxAuthTries (1–10)." default:"3" rule:"maxAuthTries"`
	LoginGraceTime string   `yaml:"loginGraceTime" doc:"sshd LoginGraceTime, e.g. 30s or 1m (1s–10m)." default:"30s" rule:"loginGrace"`
	Crypto         string   `yaml:"crypto" doc:"Crypto policy: compatible drops what ssh-audit fails (NIST-curve key exchange and host keys, SHA-1 and 64-bit MACs); modern keeps only what ssh-audit rates good; openssh leaves OpenSSH's defaults. Post-quantum key exchange is kept wherever the server has it." default:"compatible" enum:"compatible,modern,openssh"`
	MaxSessions    int      `yaml:"maxSessions" doc:"sshd MaxSessions: sessions (shells, commands, transfers) one connection may multiplex (1–10)." default:"10" rule:"maxSessions"`
	Forwarding     *bool    `yaml:"forwarding" doc:"Allow TCP, agent and unix-socket forwarding and tunnel devices over SSH; false turns all four off (AllowTcpForwarding, AllowAgentForwarding, AllowStreamLocalForwarding, PermitTunnel). X11 forwarding is always off." default:"true"`
	AllowUsers     []string `yaml:"allowUsers" doc:"Users allowed to log in; the admin user is always added." rule:"loginName"`
	AllowGroups    []string `yaml:"allowGroups" doc:"Groups allowed to log in; the admin's own group is always added." rule:"groupName"`
}

// PortSpec is a fixed port or "random".
type PortSpec struct {
	Random bool
	Value  int
}

// decodeNode reads the YAML/JSON form with ParsePort, the function that
// also reads --ssh-port, so both spell a port the same way.
func (p *PortSpec) decodeNode(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || (n.Tag == "!!str" && n.Value == "random")) {
		spec, reason := ParsePort(n.Value)
		if reason != "" {
			return &codedError{code: CodeInvalidPort, msg: reason}
		}
		*p = spec
		return nil
	}
	return &codedError{code: CodeWrongType, msg: fmt.Sprintf("must be 1–65535 or \"random\", not %s", describe(n))}
}

// IsZero reports an absent port (neither a number nor random).
func (p PortSpec) IsZero() bool { return !p.Random && p.Value == 0 }

// MarshalYAML writes the port back in its input form; an absent port (an
// order that takes the profile's) stays absent as null, never "random".
func (p PortSpec) MarshalYAML() (any, error) {
	switch {
	case p.Random:
		return "random", nil
	case p.Value == 0:
		return nil, nil
	}
	return p.Value, nil
}

// Admin configures the admin user.
type Admin struct {
	Name   string   `yaml:"name" doc:"Default admin user name when the order names none. Not root, nor a user or group Debian and Ubuntu images already have (useradd would fail)." default:"admin" rule:"loginName"`
	Sudo   string   `yaml:"sudo" doc:"nopasswd (sudo without a password) or password (the order must carry admin_password_hash)." default:"nopasswd" enum:"nopasswd,password"`
	Shell  string   `yaml:"shell" doc:"Login shell: one that every Debian and Ubuntu image has before packages are installed (the agent checks it exists at first boot)." default:"/bin/bash" rule:"shell"`
	Groups []string `yaml:"groups" doc:"Extra groups for the admin user (created when missing); not the admin's own name, no repeats." rule:"groupName" unique:"true"`
}

// Firewall configures the host firewall.
type Firewall struct {
	Enabled  *bool     `yaml:"enabled" doc:"Install a default-deny inbound firewall." default:"true"`
	Backend  string    `yaml:"backend" doc:"auto (nftables when present, else iptables), nftables or iptables." default:"auto" enum:"auto,nftables,iptables"`
	Services []Service `yaml:"services" doc:"Inbound services to allow besides SSH."`
}

// Service is an inbound port to allow.
type Service struct {
	Port    int      `yaml:"port" doc:"Port (1–65535); not the SSH port." required:"true" rule:"port"`
	Proto   string   `yaml:"proto" doc:"tcp or udp." default:"tcp" enum:"tcp,udp"`
	Sources []string `yaml:"sources" doc:"Source networks (CIDR, IPv4 or IPv6, no host bits) allowed to reach the port; empty means any. An order cannot widen a restricted port with allow." rule:"cidr"`
}

// Fail2ban configures fail2ban.
type Fail2ban struct {
	Enabled  *bool           `yaml:"enabled" doc:"Install and configure fail2ban." default:"true"`
	Defaults JailSettings    `yaml:"defaults" doc:"The [DEFAULT] section." default:"{bantime: 10m, findtime: 10m, maxretry: 5}"`
	Jails    map[string]Jail `yaml:"jails" doc:"Per-jail overrides; sshd is always enabled and always watches the real SSH port. Known jails: sshd, recidive." keys:"recidive,sshd"`
}

// JailSettings are fail2ban's timing settings.
type JailSettings struct {
	Bantime  string `yaml:"bantime" doc:"Ban duration, e.g. 10m, 1h, 1d (1s–365d)." rule:"f2bDuration"`
	Findtime string `yaml:"findtime" doc:"Window in which maxretry failures cause a ban (1s–365d)." rule:"f2bDuration"`
	Maxretry int    `yaml:"maxretry" doc:"Failures before a ban (1–100)." rule:"maxretry"`
}

// Jail is one jail's overrides.
type Jail struct {
	Enabled  *bool  `yaml:"enabled" doc:"Enable the jail (sshd cannot be disabled)." default:"true"`
	Bantime  string `yaml:"bantime" doc:"Ban duration, e.g. 30m (1s–365d)." rule:"f2bDuration"`
	Findtime string `yaml:"findtime" doc:"Window in which maxretry failures cause a ban (1s–365d)." rule:"f2bDuration"`
	Maxretry int    `yaml:"maxretry" doc:"Failures before a ban (1–100)." rule:"maxretry"`
}

// Sysctl configures kernel hardening.
type Sysctl struct {
	Hardening bool `yaml:"hardening" doc:"Apply hardbake's network and kernel sysctl hardening (no redirects, no source routing, rp_filter, syncookies, kptr/dmesg restrictions)." default:"false"`
}

// System is the operating system's own hardening. Every measure is off
// (the image's behaviour) unless the profile turns it on.
type System struct {
	LoginBanner      string `yaml:"loginBanner" doc:"Legal notice shown before console and network logins (/etc/issue, /etc/issue.net): one line, no backslashes (getty expands them). Leave it out to keep the image's." rule:"banner"`
	CoreDumps        *bool  `yaml:"coreDumps" doc:"Allow core dumps. false disables them for every process: limits.conf hard and soft 0, ulimit -c 0 for login shells, systemd-coredump stores nothing." default:"true"`
	Umask            string `yaml:"umask" doc:"Default umask of logins and new home directories (login.defs UMASK, applied by pam_umask): 022 keeps the distribution's, 027 or 077 keep group and others out." default:"022" enum:"022,027,077"`
	IdleLogout       string `yaml:"idleLogout" doc:"Log out interactive shells idle this long (a read-only TMOUT), e.g. 15m, 1m–24h. Leave it out to keep idle shells open." rule:"idleLogout"`
	BlockRareModules bool   `yaml:"blockRareModules" doc:"Refuse to load kernel modules a VPS never uses: rare filesystems (cramfs, freevxfs, hfs, hfsplus, jffs2, udf), USB and FireWire storage, and the dccp, sctp, rds and tipc protocols." default:"false"`
	PasswordQuality  bool   `yaml:"passwordQuality" doc:"Strength checks for every password set on the machine (libpam-pwquality) and more hashing rounds (login.defs SHA_CRYPT rounds); a per-user /tmp for PAM sessions (libpam-tmpdir)." default:"false"`
	Audit            bool   `yaml:"audit" doc:"Audit and accounting: auditd with rules for identity, sudo, SSH, firewall and module changes, and process accounting (acct)." default:"false"`
	FileIntegrity    bool   `yaml:"fileIntegrity" doc:"File integrity monitoring with AIDE: its database is built once in the background after first boot (idle priority), then checked daily." default:"false"`
	PackageIntegrity bool   `yaml:"packageIntegrity" doc:"Check the installed packages' files against their checksums every week with debsums (hardbake-debsums-check.timer: cloud images have no cron). A changed or missing file fails the unit and its journal names it; configuration files are left out, the hardening changes them." default:"false"`
	HideProcesses    bool   `yaml:"hideProcesses" doc:"Mount /proc with hidepid=2 (/etc/fstab, applied at once and at every boot by systemd-remount-fs): users other than root see only their own processes. A monitoring agent that lists every process must then run as root." default:"false"`
	AppArmor         bool   `yaml:"apparmor" doc:"Install AppArmor's userspace so the kernel's mandatory access control loads the profiles packages ship." default:"false"`
}

// Bool returns *b, or def when b is nil (the key was absent).
func Bool(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}
