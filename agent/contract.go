package agent

// The agent mirrors package plan's types instead of importing it. plan
// imports crypto/sha256 (for plan.Digest), and crypto/sha256 alone drags Go's
// FIPS 140 module (self-tests, DRBG, AES, SHA-3: ~170 KiB) into the static
// binary — a third of the agent's size budget (docs/bench/agent.md).
// contract_test.go proves that every mirrored type has exactly plan's
// fields, field types and json tags, so the two cannot drift apart.

// Version is the plan format version the agent applies.
const Version = 1

// Well-known paths on the target machine (plan.StateDir, ...).
const (
	StateDir   = "/var/lib/hardbake"
	PlanPath   = StateDir + "/plan.json"
	ReportPath = StateDir + "/report.json"
)

// Plan mirrors plan.Plan.
type Plan struct {
	Version    int       `json:"version"`
	Profile    string    `json:"profile"`
	InstanceID string    `json:"instance_id"`
	SSH        SSH       `json:"ssh"`
	Accounts   Accounts  `json:"accounts"`
	Firewall   *Firewall `json:"firewall,omitempty"`
	Fail2ban   *Fail2ban `json:"fail2ban,omitempty"`
	Updates    *Updates  `json:"updates,omitempty"`
	Sysctl     *Sysctl   `json:"sysctl,omitempty"`
}

// File mirrors plan.File.
type File struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	Mode    uint32 `json:"mode"`
	Owner   string `json:"owner"`
}

// SSH mirrors plan.SSH.
type SSH struct {
	Port         int               `json:"port"`
	DropIn       File              `json:"drop_in"`
	SocketDropIn File              `json:"socket_drop_in"`
	Expect       map[string]string `json:"expect"`
}

// Accounts mirrors plan.Accounts.
type Accounts struct {
	Admin            string `json:"admin"`
	LockRootPassword bool   `json:"lock_root_password"`
}

// Firewall mirrors plan.Firewall.
type Firewall struct {
	Backend      string `json:"backend"`
	Nftables     File   `json:"nftables"`
	IPTablesV4   File   `json:"iptables_v4"`
	IPTablesV6   File   `json:"iptables_v6"`
	IPTablesUnit File   `json:"iptables_unit"`
	Allow        []Port `json:"allow"`
}

// Port mirrors plan.Port.
type Port struct {
	Port  int    `json:"port"`
	Proto string `json:"proto"`
}

// Fail2ban mirrors plan.Fail2ban.
type Fail2ban struct {
	JailLocal File              `json:"jail_local"`
	Jails     map[string]string `json:"jails"`
}

// Updates mirrors plan.Updates.
type Updates struct {
	Files      []File `json:"files"`
	Unattended bool   `json:"unattended"`
}

// Sysctl mirrors plan.Sysctl.
type Sysctl struct {
	File   File              `json:"file"`
	Expect map[string]string `json:"expect"`
}

// Report mirrors plan.Report (see plan/report.go for the field docs).
type Report struct {
	PlanVersion  int           `json:"plan_version"`
	PlanDigest   string        `json:"plan_digest"`
	Profile      string        `json:"profile"`
	InstanceID   string        `json:"instance_id"`
	AgentVersion string        `json:"agent_version"`
	Stage        string        `json:"stage"`
	Result       string        `json:"result"`
	Steps        []Step        `json:"steps"`
	SSH          SSHState      `json:"ssh"`
	Firewall     FirewallState `json:"firewall"`
	Fail2ban     Fail2banState `json:"fail2ban"`
	Updates      UpdatesState  `json:"updates"`
	HostKeys     []HostKey     `json:"host_keys"`
}

// Overall results (plan.Result*).
const (
	ResultHardened = "hardened"
	ResultPartial  = "partial"
	ResultFailed   = "failed"
	ResultPending  = "pending"
)

// Step statuses (plan.Status*).
const (
	StatusApplied    = "applied"
	StatusUnchanged  = "unchanged"
	StatusRolledBack = "rolled-back"
	StatusFailed     = "failed"
	StatusWaiting    = "waiting"
	StatusSkipped    = "skipped"
)

// Step mirrors plan.Step.
type Step struct {
	Name   string  `json:"name"`
	Stage  string  `json:"stage"`
	Status string  `json:"status"`
	Error  string  `json:"error,omitempty"`
	Uptime float64 `json:"uptime_s"`
}

// SSHState mirrors plan.SSHState.
type SSHState struct {
	Activation string            `json:"activation"`
	Port       int               `json:"port"`
	Effective  map[string]string `json:"effective"`
	Banner     string            `json:"banner,omitempty"`
	Port22Open bool              `json:"port22_open"`
}

// FirewallState mirrors plan.FirewallState.
type FirewallState struct {
	Backend     string `json:"backend"`
	InputPolicy string `json:"input_policy"`
	AllowedV4   []Port `json:"allowed_v4"`
	AllowedV6   []Port `json:"allowed_v6"`
}

// Fail2banState mirrors plan.Fail2banState.
type Fail2banState struct {
	State string            `json:"state"`
	Jails map[string]string `json:"jails"`
}

// UpdatesState mirrors plan.UpdatesState.
type UpdatesState struct {
	State        string `json:"state"`
	Installed    bool   `json:"installed"`
	Periodic     string `json:"periodic"`
	TimerEnabled bool   `json:"timer_enabled"`
}

// HostKey mirrors plan.HostKey.
type HostKey struct {
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
}
