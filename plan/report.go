package plan

// Report is what the agent writes to ReportPath after every stage and prints
// for `check`. It is the agent's only output that other parts read (the CLI,
// the order service, the e2e tests), so it lives beside the plan.
//
// The agent fills this type and encodes it without encoding/json (which
// would cost hundreds of KiB in its static binary, see docs/bench/agent.md);
// agent tests decode its output strictly into Report with encoding/json.
type Report struct {
	PlanVersion  int    `json:"plan_version"`
	PlanDigest   string `json:"plan_digest"`
	Profile      string `json:"profile"`
	InstanceID   string `json:"instance_id"`
	AgentVersion string `json:"agent_version"`
	// Stage is the run that wrote the report: "early", "late" or "check".
	Stage string `json:"stage"`
	// Result is ResultHardened, ResultPartial or ResultFailed. After the
	// early stage alone it is ResultPending unless something failed.
	Result   string        `json:"result"`
	Steps    []Step        `json:"steps"`
	SSH      SSHState      `json:"ssh"`
	Firewall FirewallState `json:"firewall"`
	Fail2ban Fail2banState `json:"fail2ban"`
	Updates  UpdatesState  `json:"updates"`
	Admin    AdminState    `json:"admin"`
	HostKeys []HostKey     `json:"host_keys"`
}

// Overall results.
const (
	ResultHardened = "hardened"
	ResultPartial  = "partial"
	ResultFailed   = "failed"
	ResultPending  = "pending" // early stage done, late stage not run yet
)

// Step statuses.
const (
	StatusApplied    = "applied"
	StatusUnchanged  = "unchanged"
	StatusRolledBack = "rolled-back"
	StatusFailed     = "failed"
	StatusWaiting    = "waiting" // needs a package that is not installed yet
	StatusSkipped    = "skipped"
)

// Step is one unit of work of one stage.
type Step struct {
	Name   string `json:"name"`
	Stage  string `json:"stage"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Uptime is seconds since boot when the step finished (/proc/uptime),
	// so the boot log and the report can be lined up.
	Uptime float64 `json:"uptime_s"`
}

// SSHState is what sshd reports about itself, read back after the change.
type SSHState struct {
	// Activation is "service", "socket" (ListenStream= override) or
	// "socket-generated" (socket generated from sshd_config).
	Activation string `json:"activation"`
	Port       int    `json:"port"`
	// Effective holds `sshd -T` values for the keys the report cares
	// about (port, permitrootlogin, passwordauthentication, ...).
	Effective map[string]string `json:"effective"`
	// Banner is the SSH identification line read on 127.0.0.1:Port.
	Banner string `json:"banner,omitempty"`
	// Port22Open is true when something still answers SSH on port 22
	// although the plan moved it.
	Port22Open bool `json:"port22_open"`
}

// FirewallState is the loaded ruleset as read back from the kernel.
type FirewallState struct {
	Backend     string `json:"backend"` // "nftables", "iptables" or "" when none
	InputPolicy string `json:"input_policy"`
	AllowedV4   []Port `json:"allowed_v4"`
	AllowedV6   []Port `json:"allowed_v6"`
}

// Fail2banState is fail2ban's own view of its jails.
type Fail2banState struct {
	State string `json:"state"` // "ok", "missing", "failed", "" when not in the plan
	// Jails maps jail name to the port its actions protect, as
	// fail2ban-client reports it.
	Jails map[string]string `json:"jails"`
}

// UpdatesState is the unattended-upgrades set-up as apt and systemd see it.
type UpdatesState struct {
	State        string `json:"state"` // "ok", "missing", "failed", "" when not in the plan
	Installed    bool   `json:"installed"`
	Periodic     string `json:"periodic"` // APT::Periodic::Unattended-Upgrade
	TimerEnabled bool   `json:"timer_enabled"`
}

// HostKey is one SSH host key fingerprint in `ssh-keygen -lf` form.
type HostKey struct {
	Type        string `json:"type"` // e.g. "ssh-ed25519"
	Fingerprint string `json:"fingerprint"`
}

// AdminState is what the agent proved about the admin's way in.
type AdminState struct {
	User string `json:"user"`
	// Shell is the admin's login shell, as /etc/passwd names it.
	Shell string `json:"shell"`
	// AuthorizedKeys counts the keys in the admin's authorized_keys that
	// sshd (StrictModes) would read.
	AuthorizedKeys int `json:"authorized_keys"`
	// Sudo is the rule proven: "nopasswd" when `sudo -n true` succeeded as
	// the admin, "password" when `sudo -l -U` grants ALL; "" when unproven.
	Sudo string `json:"sudo"`
	// CanLogin is true when every check passed: shell, keys, account not
	// locked or expired for key login, sudo.
	CanLogin bool `json:"can_login"`
}
