package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hardbake.dev/hardbake/internal/testtool"
	"hardbake.dev/hardbake/plan"
)

// Every way the admin cannot really log in or sudo fails the admin-user
// step, leaves root's password as it was and takes the sshd drop-in back
// (root and password login as cloud-init left them, SSH on its old port,
// the firewall following): a machine is never left with no way in.
func TestAdminCheckRefuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rootOnly bool // needs chown
		setup    func(m *fakeMachine, p *plan.Plan)
		want     string
	}{
		{"nologin shell", false, func(m *fakeMachine, _ *plan.Plan) { m.setShell("/usr/sbin/nologin") }, "login shell /usr/sbin/nologin refuses logins"},
		{"false shell", false, func(m *fakeMachine, _ *plan.Plan) { m.setShell("/bin/false") }, "login shell /bin/false refuses logins"},
		{"missing shell", false, func(m *fakeMachine, _ *plan.Plan) { m.setShell("/bin/zsh") }, "login shell /bin/zsh does not exist"},
		{"relative shell", false, func(m *fakeMachine, _ *plan.Plan) { m.setShell("bash") }, "not an absolute path"},
		{"shell not in /etc/shells", false, func(m *fakeMachine, _ *plan.Plan) {
			m.write("/etc/shells", "/bin/sh\n# /bin/bash\n", 0o644)
		}, "login shell /bin/bash is not listed in /etc/shells"},
		{"shell not executable", false, func(m *fakeMachine, _ *plan.Plan) { os.Chmod(filepath.Join(m.root, "/bin/bash"), 0o644) }, "not an executable file"},
		{"shell is a directory", false, func(m *fakeMachine, _ *plan.Plan) {
			os.MkdirAll(filepath.Join(m.root, "/usr/local/bin/dir"), 0o755)
			m.setShell("/usr/local/bin/dir")
		}, "not an executable file"},
		{"no such user", false, func(m *fakeMachine, p *plan.Plan) { p.Accounts.Admin = "disk" }, `/etc/passwd: no entry for "disk"`},
		{"no authorized_keys", false, func(m *fakeMachine, _ *plan.Plan) {
			os.Remove(filepath.Join(m.root, "/home/admin/.ssh/authorized_keys"))
		}, "no /home/admin/.ssh/authorized_keys"},
		{"only comments and junk", false, func(m *fakeMachine, _ *plan.Plan) {
			m.writeAdmin("/home/admin/.ssh/authorized_keys", "# ssh-ed25519 AAAAC3Nza admin\n\nnot a key\nssh-ed25519 !!!\n", 0o600)
		}, "has no key"},
		{"group-writable .ssh", false, func(m *fakeMachine, _ *plan.Plan) {
			os.Chmod(filepath.Join(m.root, "/home/admin/.ssh"), 0o775)
		}, "StrictModes: /home/admin/.ssh is writable by group or others (mode 0775)"},
		{"world-writable home", false, func(m *fakeMachine, _ *plan.Plan) {
			os.Chmod(filepath.Join(m.root, "/home/admin"), 0o777)
		}, "StrictModes: /home/admin is writable by group or others"},
		{"world-writable authorized_keys", false, func(m *fakeMachine, _ *plan.Plan) {
			os.Chmod(filepath.Join(m.root, "/home/admin/.ssh/authorized_keys"), 0o606)
		}, "StrictModes: /home/admin/.ssh/authorized_keys is writable"},
		{"keys owned by someone else", true, func(m *fakeMachine, _ *plan.Plan) {
			m.chown("/home/admin/.ssh/authorized_keys", 1234, 1234)
		}, "owned by uid 1234, not root or the admin (uid 1000)"},
		{"keys root's 0600: unreadable to the admin", true, func(m *fakeMachine, _ *plan.Plan) {
			m.chown("/home/admin/.ssh/authorized_keys", 0, 0)
		}, "the admin (uid 1000) cannot read /home/admin/.ssh/authorized_keys"},
		{".ssh root's 0700: not enterable", true, func(m *fakeMachine, _ *plan.Plan) {
			m.chown("/home/admin/.ssh", 0, 0)
			os.Chmod(filepath.Join(m.root, "/home/admin/.ssh"), 0o700)
		}, "cannot enter /home/admin/.ssh"},
		{"account expired", false, func(m *fakeMachine, _ *plan.Plan) {
			m.write("/etc/shadow", "root:$y$hash:19000:0:99999:7:::\nadmin:!:19000:0:99999:7::19001:\n", 0o640)
		}, "account expired on day 19001"},
		{"password change forced", false, func(m *fakeMachine, _ *plan.Plan) {
			m.write("/etc/shadow", "root:$y$hash:19000:0:99999:7:::\nadmin:!:0:0:99999:7:::\n", 0o640)
		}, "must be changed at the next login"},
		{"password expired", false, func(m *fakeMachine, _ *plan.Plan) {
			m.write("/etc/shadow", "root:$y$hash:19000:0:99999:7:::\nadmin:$y$x:19000:0:30:7:::\n", 0o640)
		}, "password expired on day 19030"},
		{"AllowUsers without the admin", false, func(m *fakeMachine, p *plan.Plan) { p.SSH.DropIn.Content += "AllowUsers ops deploy@10.0.0.1\n" },
			"sshd AllowUsers (ops deploy@10.0.0.1) does not admit the admin"},
		{"DenyUsers pattern", false, func(m *fakeMachine, p *plan.Plan) { p.SSH.DropIn.Content += "DenyUsers ad*\n" }, "sshd DenyUsers ad* matches the admin"},
		{"AllowGroups without the admin's groups", false, func(m *fakeMachine, p *plan.Plan) {
			p.SSH.DropIn.Content += "AllowGroups sshusers\n"
			m.write("/etc/group", m.read("/etc/group")+"sshusers:x:2000:ops\n", 0o644)
		}, "sshd AllowGroups (sshusers) admits none of the admin's groups (admin)"},
		{"DenyGroups on a supplementary group", false, func(m *fakeMachine, p *plan.Plan) {
			p.SSH.DropIn.Content += "DenyGroups no-ssh\n"
			m.write("/etc/group", m.read("/etc/group")+"no-ssh:x:2001:ops,admin\n", 0o644)
		}, "sshd DenyGroups no-ssh matches a group of the admin (admin no-ssh)"},
		{"locked and sshd without PAM", false, func(m *fakeMachine, _ *plan.Plan) { m.noPAM = true }, "sshd does not use PAM"},
		{"no sudo rule", false, func(m *fakeMachine, _ *plan.Plan) { m.sudoRule = "" }, `admin user "admin" cannot use sudo: runuser -u admin -- sudo -n true: exit status 1: sudo: a password is required`},
		{"sudo wants a password, profile says nopasswd", false, func(m *fakeMachine, _ *plan.Plan) { m.sudoRule = "password" }, "sudo: a password is required"},
		{"password rule not granted", false, func(m *fakeMachine, p *plan.Plan) {
			m.sudoRule = ""
			p.Accounts.AdminSudo = plan.SudoPassword
		}, "sudo -l -U admin does not grant (ALL) ALL"},
		{"sudo not installed", false, func(m *fakeMachine, _ *plan.Plan) { m.tools["sudo"] = false }, "sudo is not installed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly {
				testtool.RequireRoot(t) // to chown the fake machine's files
			}
			m := newFake(t)
			p := testPlan()
			tc.setup(m, p)
			m.install(p)
			code, r, out := m.firstBoot(t)
			if code != ExitFailed || r.Result != plan.ResultFailed {
				t.Fatalf("exit %d result %s, want failed\n%s", code, r.Result, out)
			}
			s := step(r, StageLate, "admin-user")
			if s == nil || s.Status != plan.StatusFailed || !strings.Contains(s.Error, tc.want) {
				t.Fatalf("admin-user step %+v, want failed with %q", s, tc.want)
			}
			if !strings.Contains(out, "hardbake: FAILED step=admin-user") || !strings.Contains(out, tc.want) {
				t.Errorf("console %q", out)
			}
			if r.Admin.CanLogin {
				t.Errorf("report says the admin can log in: %+v", r.Admin)
			}
			// Never lock out: root's password untouched, sshd back to
			// cloud-init's config on port 22, the firewall not blocking it.
			if strings.HasPrefix(m.read("/etc/shadow"), "root:!") {
				t.Error("root's password was locked although the admin cannot log in")
			}
			if s := step(r, StageLate, "root-password"); s == nil || s.Status != plan.StatusSkipped {
				t.Errorf("root-password step %+v", s)
			}
			if s := step(r, StageLate, "ssh-access"); s == nil || s.Status != plan.StatusRolledBack {
				t.Errorf("ssh-access step %+v", s)
			}
			if m.exists(p.SSH.DropIn.Path) {
				t.Error("the drop-in turning root and password login off is still in place")
			}
			if !m.listen[22] || m.listen[50022] {
				t.Errorf("sshd listens on %v, want 22 only", m.listen)
			}
			if strings.Contains(m.nftRules, "policy drop") && !strings.Contains(m.nftRules, "dport 22 accept") {
				t.Errorf("firewall blocks port 22:\n%s", m.nftRules)
			}
		})
	}
}

func TestAdminCheckAccepts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(m *fakeMachine, p *plan.Plan)
		sudo  string
		keys  int
		shell string
	}{
		{"cloud-init defaults (password locked, PAM)", func(*fakeMachine, *plan.Plan) {}, plan.SudoNopasswd, 1, "/bin/bash"},
		{"password sudo rule", func(m *fakeMachine, p *plan.Plan) {
			m.sudoRule = "password"
			p.Accounts.AdminSudo = plan.SudoPassword
		}, plan.SudoPassword, 1, "/bin/bash"},
		{"empty shell field is /bin/sh", func(m *fakeMachine, _ *plan.Plan) {
			m.setShell("")
			m.write("/bin/sh", "#!fake\n", 0o755)
		}, plan.SudoNopasswd, 1, "/bin/sh"},
		{"options, comments and two keys", func(m *fakeMachine, _ *plan.Plan) {
			m.writeAdmin("/home/admin/.ssh/authorized_keys", "# keys\nfrom=\"10.0.0.0/8\",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBg+o9Zy8Ywss8vOp1YxC9cvjn5YxA3V+3mM4mOlx9c5 a\n\necdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= b\n", 0o600)
		}, plan.SudoNopasswd, 2, "/bin/bash"},
		{"AllowUsers/AllowGroups admitting the admin", func(m *fakeMachine, p *plan.Plan) {
			p.SSH.DropIn.Content += "AllowUsers ops admin@192.0.2.*\nAllowGroups sshusers\n"
			m.write("/etc/group", m.read("/etc/group")+"sshusers:x:2000:ops,admin\n", 0o644)
		}, plan.SudoNopasswd, 1, "/bin/bash"},
		{"account expiring in the future", func(m *fakeMachine, _ *plan.Plan) {
			m.write("/etc/shadow", "root:$y$hash:19000:0:99999:7:::\nadmin:!:19000:0:99999:7::99999:\n", 0o640)
		}, plan.SudoNopasswd, 1, "/bin/bash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFake(t)
			p := testPlan()
			tc.setup(m, p)
			m.install(p)
			code, r, out := m.firstBoot(t)
			if code != ExitOK || r.Result != plan.ResultHardened {
				t.Fatalf("exit %d %s\n%+v", code, out, r.Steps)
			}
			want := plan.AdminState{User: "admin", Shell: tc.shell, AuthorizedKeys: tc.keys, Sudo: tc.sudo, CanLogin: true}
			if r.Admin != want {
				t.Errorf("admin %+v, want %+v", r.Admin, want)
			}
			if !strings.HasPrefix(m.read("/etc/shadow"), "root:!") {
				t.Error("root's password not locked once the admin proved it can log in")
			}
		})
	}
}

func TestSudoGrantsAll(t *testing.T) {
	for in, want := range map[string]bool{
		"    (ALL) ALL":                               true,
		"    (ALL : ALL) ALL":                         true,
		"    (ALL) NOPASSWD: ALL":                     true,
		"    (ALL : ALL) NOPASSWD: ALL":               true,
		"    (root) ALL":                              false,
		"    (ALL) /usr/bin/apt":                      false,
		"    (ALL) NOPASSWD: /bin/ALL":                false,
		"    (ALL) ALL, !/bin/sh":                     false,
		"User admin is not allowed to run sudo on x.": false,
		"": false,
	} {
		if got := sudoGrantsAll("User admin may run the following commands on x:\n" + in + "\n"); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

func (m *fakeMachine) setShell(shell string) {
	m.write("/etc/passwd", strings.Replace(m.read("/etc/passwd"), ":/home/admin:/bin/bash", ":/home/admin:"+shell, 1), 0o644)
}

func (m *fakeMachine) writeAdmin(p, content string, mode os.FileMode) {
	m.write(p, content, mode)
	m.chown(p, m.adminUID, m.adminGID)
}

func step(r *plan.Report, stage, name string) *plan.Step {
	for i := range r.Steps {
		if r.Steps[i].Stage == stage && r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	return nil
}

// A bare "user" owner gets the user's primary group (chown "user:"), not
// gid 0; "user:group" both looked up; numeric ids as given.
func TestLookupOwner(t *testing.T) {
	m := newFake(t)
	m.write("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:2002::/home/alice:/bin/bash\nbroken:x:1002\n", 0o644)
	m.write("/etc/group", "root:x:0:\nstaff:x:50:\nalice:x:2002:\n", 0o644)
	root := Root{Dir: m.root}
	for _, tc := range []struct {
		owner    string
		uid, gid int
		err      string
	}{
		{"", -1, -1, ""},
		{"alice", 1001, 2002, ""},
		{"alice:staff", 1001, 50, ""},
		{"alice:", 1001, 2002, ""},
		{"root", 0, 0, ""},
		{"root:staff", 0, 50, ""},
		{"1001:50", 1001, 50, ""},
		{"1001", 0, 0, "a numeric user needs a group"},
		{"bob", 0, 0, `no entry for "bob"`},
		{"alice:wheel", 0, 0, `no entry for "wheel"`},
		{"broken", 0, 0, "malformed entry"},
	} {
		uid, gid, err := root.lookupOwner(tc.owner)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %d:%d %v, want error %q", tc.owner, uid, gid, err, tc.err)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid {
			t.Errorf("%q: %d:%d %v, want %d:%d", tc.owner, uid, gid, err, tc.uid, tc.gid)
		}
	}
	if os.Geteuid() == 0 { // the file really gets that group
		if err := root.WriteAtomic("/srv/x", []byte("x"), 0o640, "alice"); err != nil {
			t.Fatal(err)
		}
		fi, err := sysStatInfo(filepath.Join(m.root, "/srv/x"))
		if err != nil || fi.uid != 1001 || fi.gid != 2002 || fi.mode != 0o640 {
			t.Errorf("%+v %v", fi, err)
		}
	}
}
