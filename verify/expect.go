package verify

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// Expect is what the machine must look like from outside.
type Expect struct {
	SSHPort int    `json:"ssh_port"`
	Admin   string `json:"admin"`
	Policy  Policy `json:"crypto_policy"`
	// Firewall: whether the profile installs one. Open lists the ports it
	// allows from anywhere besides SSH; Restricted the ports it allows only
	// from some networks. ProbePort is a port it does not allow at all.
	Firewall   bool         `json:"firewall"`
	Open       []plan.Port  `json:"open,omitempty"`
	Restricted []Restricted `json:"restricted,omitempty"`
	ProbePort  int          `json:"probe_port,omitempty"`
	// Fail2ban: whether the profile installs it; MaxRetry is the sshd
	// jail's maxretry (0: unknown).
	Fail2ban bool `json:"fail2ban"`
	MaxRetry int  `json:"max_retry,omitempty"`
	// Report: the machine runs the hardbake agent, whose report must say
	// hardened and list the host key SSH sees.
	Report bool `json:"report"`
	// KnownHostKeys are fingerprints (SHA256:…) the host key must be among.
	KnownHostKeys []string `json:"known_host_keys,omitempty"`
}

// Restricted is a port the firewall opens only to some source networks.
type Restricted struct {
	Port    int            `json:"port"`
	Proto   string         `json:"proto"`
	Sources []netip.Prefix `json:"sources"`
}

// DefaultProbePort is the port checked to be filtered unless the profile
// allows it.
const DefaultProbePort = 9999

// ExpectFromPlan derives the expectations from the plan the agent applies
// (crypto is the profile's policy name, or "" to read it off the sshd
// drop-in).
func ExpectFromPlan(pl *plan.Plan, crypto string) Expect {
	e := Expect{
		SSHPort: pl.SSH.Port,
		Admin:   pl.Accounts.Admin,
		Policy:  PolicyFromSSHD(crypto, pl.SSH.DropIn.Content),
		Report:  true,
	}
	if pl.Firewall != nil {
		e.Firewall = true
		for _, p := range pl.Firewall.Allow {
			if p.Port != pl.SSH.Port && p.Proto == "tcp" {
				e.Open = append(e.Open, p)
			}
		}
	}
	if pl.Fail2ban != nil {
		e.Fail2ban = true
		e.MaxRetry = jailMaxRetry(pl.Fail2ban.JailLocal.Content, "sshd")
	}
	e.ProbePort = e.PickProbePort(DefaultProbePort)
	return e
}

// PickProbePort returns the first port from want downwards that the
// expectations neither allow nor use for SSH.
func (e Expect) PickProbePort(want int) int {
	for p := want; p > 1024; p-- {
		used := p == e.SSHPort || p == 22 || slices.ContainsFunc(e.Open, func(o plan.Port) bool { return o.Port == p }) ||
			slices.ContainsFunc(e.Restricted, func(r Restricted) bool { return r.Port == p })
		if !used {
			return p
		}
	}
	return 0
}

// GuestPorts are the TCP ports a check run reaches, for QEMU's hostfwd.
func (e Expect) GuestPorts() []int {
	ports := []int{e.SSHPort, 22}
	for _, p := range e.Open {
		ports = append(ports, p.Port)
	}
	for _, r := range e.Restricted {
		if r.Proto == "tcp" {
			ports = append(ports, r.Port)
		}
	}
	if e.ProbePort != 0 {
		ports = append(ports, e.ProbePort)
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// jailMaxRetry reads maxretry for jail from a jail.local, falling back to
// [DEFAULT]; 0 when neither sets it.
func jailMaxRetry(content, jail string) int {
	section, def, got := "", 0, 0
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != "maxretry" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		switch section {
		case "DEFAULT":
			def = n
		case jail:
			got = n
		}
	}
	if got != 0 {
		return got
	}
	return def
}
