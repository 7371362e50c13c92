package agent

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hardbake.dev/hardbake/plan"
)

// rootLocked reports whether root's password hash in /etc/shadow is locked
// ("!" prefix) or absent ("*").
func (r *run) rootLocked() (bool, error) {
	f, err := r.Root.dbEntry("/etc/shadow", "root")
	if err != nil {
		return false, err
	}
	return strings.HasPrefix(f[1], "!") || f[1] == "*", nil
}

func (r *run) lockRoot() (string, error) {
	locked, err := r.rootLocked()
	if err != nil {
		return plan.StatusFailed, err
	}
	if locked {
		return plan.StatusUnchanged, nil
	}
	if _, err := r.Runner.Run("usermod", "-L", "root"); err != nil {
		return plan.StatusFailed, fmt.Errorf("lock root password: %w", err)
	}
	return plan.StatusApplied, nil
}

func (r *run) checkRootLocked() (string, error) {
	locked, err := r.rootLocked()
	if err != nil {
		return plan.StatusFailed, err
	}
	if !locked {
		return plan.StatusFailed, errors.New("root has a usable password")
	}
	return plan.StatusUnchanged, nil
}

// checkAdmin proves the admin cloud-init created can really log in with a
// key and use sudo, the way sshd, PAM and sudo will judge it: a login shell
// that exists, is executable, is listed in /etc/shells and is not a
// nologin shell; an account that is not expired or forced to change its
// password (either blocks a key login through PAM), and not locked when
// sshd does not use PAM; an authorized key that StrictModes lets sshd read;
// and sudo as the profile's rule says. The agent never writes the keys.
func (r *run) checkAdmin() (string, error) {
	a := &r.rep.Admin
	a.User = r.plan.Accounts.Admin
	if err := r.adminLogin(a); err != nil {
		return plan.StatusFailed, fmt.Errorf("admin user %q cannot log in: %w", a.User, err)
	}
	if err := r.adminSudo(a); err != nil {
		return plan.StatusFailed, fmt.Errorf("admin user %q cannot use sudo: %w", a.User, err)
	}
	a.CanLogin = true
	return r.ok(), nil
}

// nologinShells are shells that refuse an interactive login.
var nologinShells = []string{"nologin", "false", "true", "sync", "halt", "shutdown"}

func (r *run) adminLogin(a *plan.AdminState) error {
	f, err := r.Root.dbEntry("/etc/passwd", a.User)
	if err != nil {
		return err
	}
	if len(f) != 7 {
		return fmt.Errorf("malformed /etc/passwd entry (%d fields)", len(f))
	}
	uid, err1 := strconv.Atoi(f[2])
	gid, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return errors.New("malformed uid/gid in /etc/passwd")
	}
	home, shell := f[5], f[6]
	if shell == "" {
		shell = "/bin/sh" // login(1) and sshd use /bin/sh for an empty field
	}
	a.Shell = shell
	if err := r.checkShell(shell); err != nil {
		return err
	}
	if err := r.checkShadow(a.User); err != nil {
		return err
	}
	if !strings.HasPrefix(home, "/") {
		return fmt.Errorf("home directory %q is not absolute", home)
	}
	n, err := r.checkAuthorizedKeys(home, uid, gid)
	a.AuthorizedKeys = n
	if err != nil {
		return err
	}
	return r.checkSSHDAdmits(a.User, gid)
}

// checkSSHDAdmits reads sshd's effective AllowUsers/DenyUsers/AllowGroups/
// DenyGroups (`sshd -T`) and refuses when they shut the admin out, as sshd
// would after the key was accepted. Patterns use sshd's * and ?; a
// USER@HOST entry is judged by its user part (the host is unknown here).
func (r *run) checkSSHDAdmits(user string, gid int) error {
	eff, err := r.effectiveSSH()
	if err != nil {
		return err
	}
	userMatch := func(list []string) (string, bool) {
		for _, e := range list {
			u, _, _ := strings.Cut(e, "@")
			if ok, _ := path.Match(u, user); ok {
				return e, true
			}
		}
		return "", false
	}
	if e, ok := userMatch(eff["denyusers"]); ok {
		return fmt.Errorf("sshd DenyUsers %s matches the admin", e)
	}
	if allow := eff["allowusers"]; len(allow) > 0 {
		if _, ok := userMatch(allow); !ok {
			return fmt.Errorf("sshd AllowUsers (%s) does not admit the admin", strings.Join(allow, " "))
		}
	}
	groups := r.Root.groupsOf(user, gid)
	groupMatch := func(list []string) (string, bool) {
		for _, e := range list {
			for _, g := range groups {
				if ok, _ := path.Match(e, g); ok {
					return e, true
				}
			}
		}
		return "", false
	}
	if e, ok := groupMatch(eff["denygroups"]); ok {
		return fmt.Errorf("sshd DenyGroups %s matches a group of the admin (%s)", e, strings.Join(groups, " "))
	}
	if allow := eff["allowgroups"]; len(allow) > 0 {
		if _, ok := groupMatch(allow); !ok {
			return fmt.Errorf("sshd AllowGroups (%s) admits none of the admin's groups (%s)", strings.Join(allow, " "), strings.Join(groups, " "))
		}
	}
	return nil
}

// groupsOf names user's primary group (by gid) and every group in
// /etc/group that lists user as a member.
func (r Root) groupsOf(user string, gid int) []string {
	data, err := r.ReadFile("/etc/group")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 || f[0] == "" {
			continue
		}
		if f[2] == strconv.Itoa(gid) || slices.Contains(strings.Split(f[3], ","), user) {
			out = append(out, f[0])
		}
	}
	return out
}

// checkShell: the login shell must be a real, executable shell listed in
// /etc/shells.
func (r *run) checkShell(shell string) error {
	base := path.Base(shell)
	if slices.Contains(nologinShells, base) {
		return fmt.Errorf("login shell %s refuses logins", shell)
	}
	if !strings.HasPrefix(shell, "/") {
		return fmt.Errorf("login shell %q is not an absolute path", shell)
	}
	fi, err := sysStatInfo(r.Root.Path(shell))
	if err != nil {
		return fmt.Errorf("login shell %s does not exist", shell)
	}
	if fi.fmt != syscall.S_IFREG || fi.mode&0o111 == 0 {
		return fmt.Errorf("login shell %s is not an executable file", shell)
	}
	data, err := r.Root.ReadFile("/etc/shells")
	if err != nil {
		return fmt.Errorf("login shell %s: %w", shell, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == shell {
			return nil
		}
	}
	return fmt.Errorf("login shell %s is not listed in /etc/shells", shell)
}

// checkShadow refuses an account PAM's account phase (pam_unix) would
// refuse even for a key login: expired, or its password expired or due to
// change now (sshd then demands a new password the admin does not have).
// A locked password ("!") blocks key logins only when sshd does not use
// PAM; cloud-init locks the admin's password by default.
func (r *run) checkShadow(user string) error {
	f, err := r.Root.dbEntry("/etc/shadow", user)
	if errors.Is(err, syscall.ENOENT) {
		return nil // no shadow file: nothing expires
	}
	if err != nil {
		return err
	}
	for len(f) < 9 {
		f = append(f, "")
	}
	today := time.Now().Unix() / 86400
	day := func(s string) (int64, bool) {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if exp, ok := day(f[7]); ok && exp > 0 && today >= exp {
		return fmt.Errorf("account expired on day %d (shadow field 8)", exp)
	}
	last, hasLast := day(f[2])
	if hasLast && last == 0 {
		return errors.New("password must be changed at the next login (shadow lastchg 0): sshd would ask for it")
	}
	if max, ok := day(f[4]); ok && hasLast && max >= 0 && max < 99999 && today > last+max {
		return fmt.Errorf("password expired on day %d (shadow lastchg+max): sshd would ask for a new one", last+max)
	}
	if strings.HasPrefix(f[1], "!") {
		if eff, err := r.effectiveSSH(); err == nil && !slices.Contains(eff["usepam"], "yes") {
			return errors.New("account locked (\"!\" in /etc/shadow) and sshd does not use PAM, so it refuses key logins too")
		}
	}
	return nil
}

// checkAuthorizedKeys counts the keys sshd would accept from
// ~/.ssh/authorized_keys, after the checks StrictModes makes (the file and
// every directory up to and including home owned by root or the user and
// not writable by group or others) and the user's own read access.
func (r *run) checkAuthorizedKeys(home string, uid, gid int) (int, error) {
	keysPath := path.Join(home, ".ssh/authorized_keys")
	fi, err := sysStatInfo(r.Root.Path(keysPath))
	if err != nil {
		return 0, fmt.Errorf("no %s", keysPath)
	}
	if fi.fmt != syscall.S_IFREG {
		return 0, fmt.Errorf("%s is not a regular file", keysPath)
	}
	for p := keysPath; ; p = path.Dir(p) {
		st, err := sysStatInfo(r.Root.Path(p))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		if st.uid != 0 && st.uid != uid {
			return 0, fmt.Errorf("sshd StrictModes: %s is owned by uid %d, not root or the admin (uid %d)", p, st.uid, uid)
		}
		if st.mode&0o022 != 0 {
			return 0, fmt.Errorf("sshd StrictModes: %s is writable by group or others (mode %04o)", p, st.mode)
		}
		need := uint32(0o1) // search permission on directories
		if p == keysPath {
			need = 0o4
		}
		if !userMay(st, uid, gid, need) {
			return 0, fmt.Errorf("the admin (uid %d) cannot %s %s (owner %d:%d mode %04o)",
				uid, map[uint32]string{1: "enter", 4: "read"}[need], p, st.uid, st.gid, st.mode)
		}
		if p == home || p == "/" {
			break
		}
	}
	data, err := r.Root.ReadFile(keysPath)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if authorizedKeyLine(line) {
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%s has no key", keysPath)
	}
	return n, nil
}

// userMay reports whether uid (primary group gid) has the permission bit
// (1 execute/search, 4 read) on a file, by its owner, group and other bits.
// Root (uid 0) needs no bit. Supplementary groups are not considered: the
// check errs towards refusing.
func userMay(st fileInfo, uid, gid int, bit uint32) bool {
	switch {
	case uid == 0:
		return true
	case st.uid == uid:
		return st.mode&(bit<<6) != 0
	case st.gid == gid:
		return st.mode&(bit<<3) != 0
	}
	return st.mode&bit != 0
}

// authorizedKeyLine reports whether a line of authorized_keys carries a
// key: optional options, then a key type, then base64 key data.
func authorizedKeyLine(line string) bool {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return false
	}
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		t := f[i]
		if strings.HasPrefix(t, "ssh-") || strings.HasPrefix(t, "ecdsa-sha2-") || strings.HasPrefix(t, "sk-") {
			return isBase64(f[i+1]) && strings.HasPrefix(f[i+1], "AAAA")
		}
	}
	return false
}

func isBase64(s string) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return s != ""
}

// adminSudo proves the profile's sudo rule. Passwordless: `sudo -n true`
// run as the admin through runuser (util-linux, on every Debian image),
// exactly what the admin will type. With a password: the agent cannot
// type it, so root asks sudo what the admin may run (`sudo -l -U`).
func (r *run) adminSudo(a *plan.AdminState) error {
	if !has(r.Runner, "sudo") {
		return errors.New("sudo is not installed")
	}
	if r.plan.Accounts.AdminSudo == plan.SudoPassword {
		out, err := r.Runner.Run("sudo", "-n", "-l", "-U", a.User)
		if err != nil {
			return err
		}
		if !sudoGrantsAll(string(out)) {
			return fmt.Errorf("sudo -l -U %s does not grant (ALL) ALL", a.User)
		}
		a.Sudo = plan.SudoPassword
		return nil
	}
	if _, err := r.Runner.Run("runuser", "-u", a.User, "--", "sudo", "-n", "true"); err != nil {
		return err
	}
	a.Sudo = plan.SudoNopasswd
	return nil
}

// sudoGrantsAll reads `sudo -l -U USER` output for a rule running every
// command as any user: "(ALL) ALL", "(ALL : ALL) ALL", also with
// "NOPASSWD:" or other tags before the command list.
func sudoGrantsAll(out string) bool {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "(ALL") {
			continue
		}
		runas, cmds, ok := strings.Cut(line[1:], ")")
		if !ok || (runas != "ALL" && runas != "ALL : ALL") {
			continue
		}
		f := strings.Fields(cmds)
		if len(f) > 0 && f[len(f)-1] == "ALL" && (len(f) == 1 || strings.HasSuffix(f[len(f)-2], ":")) {
			return true
		}
	}
	return false
}
