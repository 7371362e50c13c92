// Package config holds hardbake's inputs — the hardening profile and the VPS
// order — with their strict decoding, defaults and validation. Every front
// end (CLI, service) goes through it, so all of them report the same errors.
// Types carry `doc` tags: the JSON Schema and the profile reference are
// generated from these same types.
package config

import (
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"
)

// APIVersion and KindProfile identify a v1 profile document.
const (
	APIVersion  = "hardbake.dev/v1"
	KindProfile = "Profile"
)

// Profile is a hardening profile: what every VPS built from it must look like.
type Profile struct {
	APIVersion string   `yaml:"apiVersion" doc:"Always hardbake.dev/v1." required:"true" enum:"hardbake.dev/v1"`
	Kind       string   `yaml:"kind" doc:"Always Profile." required:"true" enum:"Profile"`
	Metadata   Metadata `yaml:"metadata" required:"true"`
	Updates    Updates  `yaml:"updates" doc:"System updates at first boot and afterwards."`
	SSH        SSH      `yaml:"ssh" doc:"The OpenSSH server. Root login, password and keyboard-interactive login are always off."`
	Admin      Admin    `yaml:"admin" doc:"The admin user that replaces root. Its name and keys come from the order."`
	Firewall   Firewall `yaml:"firewall" doc:"Default-deny inbound firewall for IPv4 and IPv6."`
	Fail2ban   Fail2ban `yaml:"fail2ban" doc:"Fail2ban bans hosts that fail to log in."`
	Sysctl     Sysctl   `yaml:"sysctl" doc:"Kernel and network sysctl hardening."`
	Packages   []string `yaml:"packages" doc:"Extra Debian packages to install at first boot."`
}

// Metadata names the profile.
type Metadata struct {
	Name        string `yaml:"name" doc:"Profile name: lower-case letters, digits and hyphens." required:"true"`
	Description string `yaml:"description" doc:"One line saying what the profile is for."`
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
	Reboot  string `yaml:"reboot" doc:"Automatic reboot time when an upgrade needs one, as HH:MM, or none." default:"none"`
}

// Mirror is an apt mirror.
type Mirror struct {
	URL        string   `yaml:"url" doc:"Mirror URL (http or https)." required:"true"`
	Suites     []string `yaml:"suites" doc:"Suites to use; $RELEASE is the machine's codename." default:"[\"$RELEASE\", \"$RELEASE-updates\"]"`
	Components []string `yaml:"components" doc:"Archive components." default:"[\"main\"]"`
	Key        string   `yaml:"key" doc:"ASCII-armoured OpenPGP public key that signs the mirror; without it the machine's keyring must already trust it."`
}

// SSH configures sshd.
type SSH struct {
	Port           PortSpec `yaml:"port" doc:"SSH port: a number (1–65535, not 22) or random (chosen in 49152–65535 from the instance-id)." default:"random"`
	MaxAuthTries   int      `yaml:"maxAuthTries" doc:"sshd MaxAuthTries (1–10)." default:"3"`
	LoginGraceTime string   `yaml:"loginGraceTime" doc:"sshd LoginGraceTime, e.g. 30s or 1m (1s–10m)." default:"30s"`
	Crypto         string   `yaml:"crypto" doc:"Crypto policy: compatible drops what ssh-audit fails (NIST-curve key exchange and host keys, SHA-1 and 64-bit MACs); modern keeps only what ssh-audit rates good; openssh leaves OpenSSH's defaults. Post-quantum key exchange is kept wherever the server has it." default:"compatible" enum:"compatible,modern,openssh"`
	AllowUsers     []string `yaml:"allowUsers" doc:"Users allowed to log in; the admin user is always added."`
	AllowGroups    []string `yaml:"allowGroups" doc:"Groups allowed to log in."`
}

// PortSpec is a fixed port or "random".
type PortSpec struct {
	Random bool
	Value  int
}

func (p *PortSpec) decodeNode(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == "random" {
		*p = PortSpec{Random: true}
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.Atoi(n.Value)
		if err == nil && v != 0 { // 0 would read as absent, i.e. random
			*p = PortSpec{Value: v}
			return nil
		}
	}
	return fmt.Errorf("must be 1–65535 or \"random\", not %s", describe(n))
}

// MarshalYAML writes the port back in its input form.
func (p PortSpec) MarshalYAML() (any, error) {
	if p.Random || p.Value == 0 {
		return "random", nil
	}
	return p.Value, nil
}

// Admin configures the admin user.
type Admin struct {
	Name   string   `yaml:"name" doc:"Default admin user name when the order names none." default:"admin"`
	Sudo   string   `yaml:"sudo" doc:"nopasswd (sudo without a password) or password (the order must carry admin_password_hash)." default:"nopasswd" enum:"nopasswd,password"`
	Shell  string   `yaml:"shell" doc:"Login shell." default:"/bin/bash"`
	Groups []string `yaml:"groups" doc:"Extra groups for the admin user."`
}

// Firewall configures the host firewall.
type Firewall struct {
	Enabled  *bool     `yaml:"enabled" doc:"Install a default-deny inbound firewall." default:"true"`
	Backend  string    `yaml:"backend" doc:"auto (nftables when present, else iptables), nftables or iptables." default:"auto" enum:"auto,nftables,iptables"`
	Services []Service `yaml:"services" doc:"Inbound services to allow besides SSH."`
}

// Service is an inbound port to allow.
type Service struct {
	Port    int      `yaml:"port" doc:"Port (1–65535)." required:"true"`
	Proto   string   `yaml:"proto" doc:"tcp or udp." default:"tcp" enum:"tcp,udp"`
	Sources []string `yaml:"sources" doc:"Source networks (CIDR, IPv4 or IPv6) allowed to reach the port; empty means any."`
}

// Fail2ban configures fail2ban.
type Fail2ban struct {
	Enabled  *bool           `yaml:"enabled" doc:"Install and configure fail2ban." default:"true"`
	Defaults JailSettings    `yaml:"defaults" doc:"The [DEFAULT] section." default:"{bantime: 10m, findtime: 10m, maxretry: 5}"`
	Jails    map[string]Jail `yaml:"jails" doc:"Per-jail overrides; sshd is always enabled and always watches the real SSH port. Known jails: sshd, recidive."`
}

// JailSettings are fail2ban's timing settings.
type JailSettings struct {
	Bantime  string `yaml:"bantime" doc:"Ban duration, e.g. 10m, 1h, 1d."`
	Findtime string `yaml:"findtime" doc:"Window in which maxretry failures cause a ban."`
	Maxretry int    `yaml:"maxretry" doc:"Failures before a ban (1–100)."`
}

// Jail is one jail's overrides.
type Jail struct {
	Enabled  *bool  `yaml:"enabled" doc:"Enable the jail (sshd cannot be disabled)." default:"true"`
	Bantime  string `yaml:"bantime" doc:"Ban duration, e.g. 30m."`
	Findtime string `yaml:"findtime" doc:"Window in which maxretry failures cause a ban."`
	Maxretry int    `yaml:"maxretry" doc:"Failures before a ban (1–100)."`
}

// Sysctl configures kernel hardening.
type Sysctl struct {
	Hardening bool `yaml:"hardening" doc:"Apply hardbake's network and kernel sysctl hardening (no redirects, no source routing, rp_filter, syncookies, kptr/dmesg restrictions)." default:"false"`
}

// Bool returns *b, or def when b is nil (the key was absent).
func Bool(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}
