package render

// Typed inputs of the templates in templates/files. Only validated values
// from config reach them.

type sshdData struct {
	Profile        string
	Port           int
	MaxAuthTries   int
	LoginGraceTime int // seconds
	AllowUsers     []string
	AllowGroups    []string
	Crypto         string // compatible, modern or openssh
	MaxSessions    int
	Forwarding     bool
}

type portData struct {
	Profile string
	Port    int
}

type firewallData struct {
	Profile string
	SSHPort int
	Rules   []firewallRule
}

// firewallRule allows one port from anywhere (Any) or from the listed
// networks, split by family because each family has its own match.
type firewallRule struct {
	Proto     string
	Port      int
	Any       bool
	V4Sources []string
	V6Sources []string
}

type jailData struct {
	Profile           string
	SSHPort           int
	Banaction         string
	BanactionAllports string
	Defaults          jailSettings
	SSHD              jailSettings
	Recidive          *jailSettings
}

type jailSettings struct {
	Bantime  string
	Findtime string
	Maxretry int
}

type profileOnly struct {
	Profile string
}

type unattendedData struct {
	Profile    string
	RebootTime string // empty: never reboot automatically
}

type sysctlData struct {
	Profile  string
	Settings []sysctlSetting
}

type sysctlSetting struct {
	Key, Value string
}

type sourcesData struct {
	Profile string
	URL     string
	KeyPath string
	Suites  []string
	// SecurityURL serves $RELEASE-security ("" for none).
	SecurityURL string
	Components  []string
}

// sysctlHardening is the kernel and network hardening set: no ICMP
// redirects or source routing, reverse-path filtering, SYN cookies, martian
// logging, kernel pointer/dmesg/BPF restrictions, FIFO and regular-file
// protection in sticky directories, no magic SysRq keys, ptrace only of
// descendants (Yama), no line-discipline autoloading. Every key exists on
// Debian 12/13 and Ubuntu 22.04+ kernels, so `sysctl -p` cannot fail on a
// missing key.
var sysctlHardening = []sysctlSetting{
	{"net.ipv4.conf.all.accept_redirects", "0"},
	{"net.ipv4.conf.default.accept_redirects", "0"},
	{"net.ipv6.conf.all.accept_redirects", "0"},
	{"net.ipv6.conf.default.accept_redirects", "0"},
	{"net.ipv4.conf.all.secure_redirects", "0"},
	{"net.ipv4.conf.default.secure_redirects", "0"},
	{"net.ipv4.conf.all.send_redirects", "0"},
	{"net.ipv4.conf.default.send_redirects", "0"},
	{"net.ipv4.conf.all.accept_source_route", "0"},
	{"net.ipv4.conf.default.accept_source_route", "0"},
	{"net.ipv6.conf.all.accept_source_route", "0"},
	{"net.ipv6.conf.default.accept_source_route", "0"},
	{"net.ipv4.conf.all.rp_filter", "1"},
	{"net.ipv4.conf.default.rp_filter", "1"},
	{"net.ipv4.conf.all.log_martians", "1"},
	{"net.ipv4.conf.default.log_martians", "1"},
	{"net.ipv4.icmp_echo_ignore_broadcasts", "1"},
	{"net.ipv4.icmp_ignore_bogus_error_responses", "1"},
	{"net.ipv4.tcp_syncookies", "1"},
	{"kernel.kptr_restrict", "2"},
	{"kernel.dmesg_restrict", "1"},
	{"kernel.unprivileged_bpf_disabled", "1"},
	{"net.core.bpf_jit_harden", "2"},
	{"fs.protected_hardlinks", "1"},
	{"fs.protected_symlinks", "1"},
	{"fs.suid_dumpable", "0"},
	{"fs.protected_fifos", "2"},
	{"fs.protected_regular", "2"},
	{"kernel.core_uses_pid", "1"},
	{"kernel.sysrq", "0"},
	{"kernel.yama.ptrace_scope", "1"},
	{"dev.tty.ldisc_autoload", "0"},
}
