package render

import (
	"fmt"
	"strings"
	"time"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/plan"
)

// Paths of the system measures' files on the target machine.
const (
	issuePath        = "/etc/issue"
	issueNetPath     = "/etc/issue.net"
	coreLimitsPath   = "/etc/security/limits.d/90-hardbake-core.conf"
	coreProfilePath  = "/etc/profile.d/hardbake-core.sh"
	coredumpConfPath = "/etc/systemd/coredump.conf.d/90-hardbake.conf"
	idleProfilePath  = "/etc/profile.d/hardbake-idle.sh"
	modprobePath     = "/etc/modprobe.d/hardbake-blocklist.conf"
	auditRulesPath   = "/etc/audit/rules.d/90-hardbake.rules"
	aideConfPath     = "/etc/aide/aide.conf"
	aideInitPath     = "/etc/systemd/system/" + aideInitUnit
	aideCheckPath    = "/etc/systemd/system/hardbake-aide-check.service"
	aideTimerPath    = "/etc/systemd/system/" + aideCheckTimer
	aidePinPath      = "/etc/apt/preferences.d/hardbake-aide"
	debsumsCheckPath = "/etc/systemd/system/hardbake-debsums-check.service"
	debsumsTimerPath = "/etc/systemd/system/" + debsumsCheckTimer
	loginDefsPath    = "/etc/login.defs"
	fstabPath        = "/etc/fstab"
)

// procFstabOptions is /proc's line in /etc/fstab under hideProcesses
// (minus its first field, "proc", the key the agent sets it by).
// hidepid=2 rather than its newer name, invisible, which kernels before
// 5.8 refuse; newer ones show it as invisible in /proc/mounts.
const procFstabOptions = "/proc proc defaults,hidepid=2 0 0"

// rareModules are kernel modules a VPS never needs: filesystems of flash
// and other operating systems (vfat and iso9660 stay: EFI system
// partitions and NoCloud seeds use them), USB and FireWire storage, and
// network protocols with a history of remotely reachable bugs.
var rareModules = []string{
	"cramfs", "freevxfs", "hfs", "hfsplus", "jffs2", "udf",
	"usb-storage", "firewire-core", "firewire-ohci",
	"dccp", "sctp", "rds", "tipc",
}

// shaCryptRounds is login.defs' SHA_CRYPT_{MIN,MAX}_ROUNDS: tools that hash
// with login.defs (chpasswd, newusers) use 65,536 rounds instead of 5,000.
const shaCryptRounds = "65536"

// systemPackages are the packages the system measures bring, in a fixed order.
func systemPackages(s config.System) []string {
	var pkgs []string
	if s.PasswordQuality {
		pkgs = append(pkgs, "libpam-pwquality", "libpam-tmpdir")
	}
	if s.Audit {
		pkgs = append(pkgs, "auditd", "acct")
	}
	if s.FileIntegrity {
		// aide alone: aide-common, which it recommends, is kept out by
		// aidePin (see there).
		pkgs = append(pkgs, "aide")
	}
	if s.PackageIntegrity {
		pkgs = append(pkgs, "debsums")
	}
	if s.AppArmor {
		pkgs = append(pkgs, "apparmor")
	}
	return pkgs
}

// aideInitUnit and aideCheckTimer are started by cloud-init's runcmd
// after the agent: the database is built from the hardened machine.
const (
	aideInitUnit   = "hardbake-aide-init.service"
	aideCheckTimer = "hardbake-aide-check.timer"
)

// debsumsCheckTimer is enabled by cloud-init's runcmd once debsums is
// installed. debsums' own schedule is a cron job (CRON_CHECK in
// /etc/default/debsums), and cloud images have no cron: without a timer
// of hardbake's the check would never run.
const debsumsCheckTimer = "hardbake-debsums-check.timer"

// aidePin keeps aide-common off the machine. hardbake brings its own AIDE
// configuration and units; aide-common's postinst registers some 200
// configuration snippets with ucf (minutes of first boot on a small VPS)
// and its recommends pull in cron and a mail server (exim4).
const aidePin = `Package: aide-common
Pin: release *
Pin-Priority: -1
`

// systemMeasures is the plan's System section; nil when the profile asks
// for none of its measures.
func systemMeasures(p *config.Profile, r *renderer) (*plan.System, error) {
	s := p.System
	name := p.Metadata.Name
	head := "# Managed by hardbake (profile " + name + ")"
	sys := &plan.System{}
	file := func(path string, mode uint32, content string) {
		sys.Files = append(sys.Files, plan.File{Path: path, Content: content, Mode: mode, Owner: "root:root"})
	}
	if s.LoginBanner != "" {
		// No comment line: getty and sshd print these files as they are.
		file(issuePath, 0o644, s.LoginBanner+"\n")
		file(issueNetPath, 0o644, s.LoginBanner+"\n")
	}
	if !config.Bool(s.CoreDumps, true) {
		// root needs lines of its own: pam_limits applies no wildcard
		// limit to root (limits.conf(5)), and Debian 13's systemd ships
		// limits.d/10-coredump-debian.conf, which gives root an unlimited
		// hard limit. This file sorts after it, so its lines win.
		file(coreLimitsPath, 0o644, head+": no core dumps.\n* hard core 0\n* soft core 0\nroot hard core 0\nroot soft core 0\n")
		file(coreProfilePath, 0o644, head+": no core dumps from login shells.\nulimit -c 0\n")
		file(coredumpConfPath, 0o644, head+": systemd-coredump keeps nothing.\n[Coredump]\nStorage=none\nProcessSizeMax=0\n")
	}
	if s.Umask != "" && s.Umask != "022" {
		sys.Settings = append(sys.Settings, plan.Setting{Path: loginDefsPath, Key: "UMASK", Value: s.Umask})
	}
	if s.IdleLogout != "" {
		d, err := time.ParseDuration(s.IdleLogout)
		if err != nil {
			return nil, fmt.Errorf("system.idleLogout: %w", err)
		}
		file(idleProfilePath, 0o644, fmt.Sprintf("%s: log out idle interactive shells.\nTMOUT=%d\nreadonly TMOUT\nexport TMOUT\n", head, int(d/time.Second)))
	}
	if s.BlockRareModules {
		var b strings.Builder
		b.WriteString(head + ": kernel modules a VPS never loads.\n")
		b.WriteString("# \"install M /bin/true\" stops explicit loads and autoloading (blacklist stops only the latter).\n")
		for _, m := range rareModules {
			fmt.Fprintf(&b, "install %s /bin/true\n", m)
		}
		file(modprobePath, 0o644, b.String())
	}
	if s.PasswordQuality {
		sys.Settings = append(sys.Settings,
			plan.Setting{Path: loginDefsPath, Key: "SHA_CRYPT_MIN_ROUNDS", Value: shaCryptRounds},
			plan.Setting{Path: loginDefsPath, Key: "SHA_CRYPT_MAX_ROUNDS", Value: shaCryptRounds})
	}
	if s.Audit {
		sys.Files = append(sys.Files, r.file(auditRulesPath, 0o640, "audit.rules.tmpl", profileOnly{name}))
		sys.Services = append(sys.Services, "auditd.service", "acct.service")
	}
	if s.FileIntegrity {
		// The pin is written in the early stage, before cloud-init installs
		// packages in its final stage.
		file(aidePinPath, 0o644, head+": hardbake configures AIDE itself, without aide-common.\n"+aidePin)
		sys.Files = append(sys.Files,
			r.file(aideConfPath, 0o600, "aide.conf.tmpl", profileOnly{name}),
			r.file(aideInitPath, 0o644, "aide-init.service.tmpl", profileOnly{name}),
			r.file(aideCheckPath, 0o644, "aide-check.service.tmpl", profileOnly{name}),
			r.file(aideTimerPath, 0o644, "aide-check.timer.tmpl", profileOnly{name}))
	}
	if s.PackageIntegrity {
		sys.Files = append(sys.Files,
			r.file(debsumsCheckPath, 0o644, "debsums-check.service.tmpl", profileOnly{name}),
			r.file(debsumsTimerPath, 0o644, "debsums-check.timer.tmpl", profileOnly{name}))
	}
	if s.HideProcesses {
		// systemd-remount-fs applies an API file system's fstab options
		// at every boot; cloud-init's runcmd remounts /proc once at first
		// boot (cloudConfig).
		sys.Settings = append(sys.Settings, plan.Setting{Path: fstabPath, Key: "proc", Value: procFstabOptions})
	}
	// AppArmor has no service to prove here: the package loads its
	// profiles when it is installed, and apparmor.service (enabled by the
	// package) first runs at the next boot.
	if len(sys.Files) == 0 && len(sys.Settings) == 0 && len(sys.Services) == 0 {
		return nil, nil
	}
	return sys, nil
}
