// Package plan is the one contract between the generator (render) and the
// first-boot agent (cmd/hardbake-firstboot). It holds the types, the
// constants and the one strict decoder (Decode) both sides use, so a plan
// cannot mean one thing to the generator and another to the agent. The
// canonical encoding and digest live on the generator side
// (render.EncodePlan, render.PlanDigest).
//
// The generator decides *what* the machine must look like (file contents,
// expected effective values); the agent decides *how* on the machine it runs
// on (socket vs service activation, nft vs iptables), validates, switches,
// verifies and rolls back.
package plan

// Version is the plan format version. The agent refuses plans of another version.
const Version = 1

// Well-known paths on the target machine.
const (
	AgentPath  = "/usr/local/sbin/hardbake-firstboot"
	StateDir   = "/var/lib/hardbake"
	PlanPath   = StateDir + "/plan.json"
	ReportPath = StateDir + "/report.json"

	// ReportEndpointPath is where an order from hardbaked tells the machine
	// where to send its report and with which key (written by cloud-init's
	// write_files, mode 0600): {"url": …, "order_id": …, "key": 64 hex}.
	// Without it the report stays on the machine only.
	ReportEndpointPath = StateDir + "/report-endpoint.json"
	// OutboxPath holds the newest report not yet delivered to the service.
	OutboxPath = StateDir + "/report-outbox.json"
	// DeliveryPath records how the last delivery ended.
	DeliveryPath = StateDir + "/report-delivery.json"
)

// Plan is everything the agent applies on one machine.
type Plan struct {
	Version    int    `json:"version"`
	Profile    string `json:"profile"`
	InstanceID string `json:"instance_id"`

	SSH      SSH       `json:"ssh"`
	Accounts Accounts  `json:"accounts"`
	Firewall *Firewall `json:"firewall,omitempty"`
	Fail2ban *Fail2ban `json:"fail2ban,omitempty"`
	Updates  *Updates  `json:"updates,omitempty"`
	Sysctl   *Sysctl   `json:"sysctl,omitempty"`
	System   *System   `json:"system,omitempty"`
}

// File is one configuration file the agent owns. Content is the whole file.
type File struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	Mode    uint32 `json:"mode"`  // permission bits, e.g. 0o644
	Owner   string `json:"owner"` // "user:group", e.g. "root:root"
}

// SSH moves and hardens the OpenSSH server.
type SSH struct {
	// Port is the port sshd must listen on after hardening.
	Port int `json:"port"`
	// DropIn is the sshd_config.d file; its name sorts before cloud-init's
	// 50-cloud-init.conf because sshd takes the first value it reads.
	DropIn File `json:"drop_in"`
	// SocketDropIn is the ssh.socket override used only where SSH is
	// socket-activated with ListenStream= in the unit (Ubuntu 22.10–23.10):
	// an empty ListenStream= reset line, then the new port. Where the socket
	// is generated from sshd_config (Ubuntu 24.04+) the agent does not write
	// it and runs daemon-reload plus a socket restart instead.
	SocketDropIn File `json:"socket_drop_in"`
	// Expect maps `sshd -T` keywords (lower case) to the values the
	// effective configuration must show, e.g. "port": "50022".
	Expect map[string]string `json:"expect"`
}

// Accounts covers the admin user and root.
type Accounts struct {
	// Admin is the user cloud-init creates with the order's keys; the agent
	// verifies it exists, has an authorized key and passwordless or password
	// sudo as the profile says, and never touches its keys.
	Admin string `json:"admin"`
	// LockRootPassword: `usermod -L root` (root keeps no usable password).
	// The agent locks it only after proving the admin can log in and sudo.
	LockRootPassword bool `json:"lock_root_password"`
	// AdminSudo is the sudo rule the profile gave the admin: "" or
	// SudoNopasswd (the agent runs `sudo -n true` as the admin), or
	// SudoPassword (`sudo -l -U admin` must grant ALL; the agent cannot
	// type the password).
	AdminSudo string `json:"admin_sudo,omitempty"`
}

// Sudo rules of the admin (Accounts.AdminSudo).
const (
	SudoNopasswd = "nopasswd"
	SudoPassword = "password"
)

// Firewall is a default-deny inbound firewall for IPv4 and IPv6.
type Firewall struct {
	// Backend is "auto" (nft when present, else iptables), "nftables" or "iptables".
	Backend string `json:"backend"`
	// Nftables is the complete ruleset, written to /etc/nftables.conf and
	// made persistent by enabling nftables.service.
	Nftables File `json:"nftables"`
	// IPTablesV4 and IPTablesV6 are iptables-restore files (rules.v4/v6).
	IPTablesV4 File `json:"iptables_v4"`
	IPTablesV6 File `json:"iptables_v6"`
	// IPTablesUnit restores the iptables files at boot, ordered before
	// network-pre.target, for images without iptables-persistent.
	IPTablesUnit File `json:"iptables_unit"`
	// Allow lists what the loaded ruleset must accept, for verification.
	// It always includes the SSH port.
	Allow []Port `json:"allow"`
}

// Port is a port and protocol ("tcp" or "udp").
type Port struct {
	Port  int    `json:"port"`
	Proto string `json:"proto"`
}

// Fail2ban configures fail2ban. JailLocal is written at the early stage
// (fail2ban reads it when the package arrives); the late stage verifies the
// jails, restarting fail2ban first if it did not start from that file.
type Fail2ban struct {
	JailLocal File `json:"jail_local"`
	// Jails maps each enabled jail to the port(s) it must protect, as
	// fail2ban-client reports them, e.g. "sshd": "50022".
	Jails map[string]string `json:"jails"`
}

// Updates configures unattended security upgrades.
type Updates struct {
	Files []File `json:"files"`
	// Unattended: the late stage verifies unattended-upgrades is installed
	// and its apt timers are enabled.
	Unattended bool `json:"unattended"`
}

// Sysctl is a sysctl.d drop-in applied with `sysctl -p FILE`.
type Sysctl struct {
	File File `json:"file"`
	// Expect maps sysctl keys to the values `sysctl -n` must print.
	Expect map[string]string `json:"expect"`
}

// System is the operating system's own hardening: whole files the agent
// owns (login banners, limits, the module blocklist, audit rules …), single
// settings in files the distribution owns, and services that must run once
// the packages that bring them are installed.
type System struct {
	Files []File `json:"files,omitempty"`
	// Settings are "KEY VALUE" lines in files such as /etc/login.defs,
	// which has no drop-in directory: the agent replaces each key's line
	// (or appends one) and leaves the rest of the file as it is.
	Settings []Setting `json:"settings,omitempty"`
	// Services must be active after the late stage (systemctl is-active).
	Services []string `json:"services,omitempty"`
}

// Setting is one "KEY VALUE" line of a whitespace-separated config file.
type Setting struct {
	Path  string `json:"path"`
	Key   string `json:"key"`
	Value string `json:"value"`
}
