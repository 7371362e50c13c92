package config

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hardbake.dev/hardbake/internal/testtool"
)

// requireFile returns the content of a system file a real-data test reads;
// missing, it skips, or fails under HARDBAKE_REQUIRE_TOOLS=1.
func requireFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err == nil {
		return b
	}
	if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is required (HARDBAKE_REQUIRE_TOOLS=1): %v", path, err)
	}
	t.Skipf("%s: %v", path, err)
	return nil
}

// TestReservedNamesCoverDebian: every user and group that Debian's
// base-passwd and systemd's sysusers.d create is refused as an admin name,
// read from the real files of this Debian machine.
func TestReservedNamesCoverDebian(t *testing.T) {
	var names []string
	for _, f := range []string{"/usr/share/base-passwd/passwd.master", "/usr/share/base-passwd/group.master"} {
		for _, line := range strings.Split(string(requireFile(t, f)), "\n") {
			if name, _, ok := strings.Cut(line, ":"); ok && name != "" {
				names = append(names, name)
			}
		}
	}
	confs, _ := filepath.Glob("/usr/lib/sysusers.d/*.conf")
	if len(confs) == 0 {
		requireFile(t, "/usr/lib/sysusers.d/basic.conf")
	}
	for _, f := range confs {
		sc := bufio.NewScanner(bytes.NewReader(requireFile(t, f)))
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) >= 2 && (fields[0] == "u" || fields[0] == "g") {
				names = append(names, fields[1])
			}
		}
	}
	if len(names) < 40 {
		t.Fatalf("read only %d names", len(names))
	}
	for _, n := range names {
		if checkUserName(n) == "" {
			t.Errorf("admin name %q is accepted, but Debian creates that user or group", n)
		}
	}
	for _, ok := range []string{"admin", "deploy", "debian", "ubuntu", "ops"} {
		if reason := checkUserName(ok); reason != "" {
			t.Errorf("%q refused: %s", ok, reason)
		}
	}
}

// TestLoginShellsAreRealShells: every accepted shell is in this Debian
// machine's /etc/shells and is an executable file; the shells that lock a
// user out are not accepted.
func TestLoginShellsAreRealShells(t *testing.T) {
	listed := strings.Split(string(requireFile(t, "/etc/shells")), "\n")
	for _, sh := range loginShells {
		if !slices.Contains(listed, sh) {
			t.Errorf("%s is not in /etc/shells", sh)
		}
		st, err := os.Stat(sh)
		if err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s is not an executable file here: %v", sh, err)
		}
	}
	for _, bad := range []string{"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", "/bin/sync", "/bin/true", "/usr/bin/zsh", "/usr/bin/fish", "/bin/rbash"} {
		if checkShell(bad) == "" {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestPackageNamesMeanInstall asks apt-get itself (simulating, on this
// machine's package lists): every accepted name installs that package and
// nothing is removed, while the forms checkPackage refuses do something
// else (remove sshd, select by regular expression).
func TestPackageNamesMeanInstall(t *testing.T) {
	apt := testtool.Require(t, "apt-get")
	simulate := func(names ...string) string {
		args := append([]string{"-s", "-o", "Debug::NoLocking=1", "install"}, names...)
		out, _ := exec.Command(apt, args...).CombinedOutput()
		return string(out)
	}
	// One apt-get run for all the accepted names (each run reads the whole
	// package cache: seconds).
	legit := []string{"curl", "g++", "libstdc++6", "dvd+rw-tools", "python3", "openssh-server"}
	for _, name := range legit {
		if reason := checkPackage(name); reason != "" {
			t.Errorf("%s refused: %s", name, reason)
		}
	}
	out := simulate(legit...)
	if strings.Contains(out, "Unable to locate") && strings.Contains(out, "curl") {
		if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("apt has no package lists (run apt-get update):\n%s", out)
		}
		t.Skipf("apt has no package lists:\n%s", out)
	}
	for _, bad := range []string{"Remv ", "REMOVED", "Note, selecting", "E: "} {
		if strings.Contains(out, bad) {
			t.Errorf("apt-get install %v does more than install them (%q):\n%s", legit, bad, out)
		}
	}
	// What the refused forms would do: a trailing - removes sshd, a
	// trailing . selects whatever the regular expression matches.
	refused := map[string]string{"sshpas.": "Inst sshpass"}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "openssh-server").Output(); strings.Contains(string(out), "install ok installed") {
		refused["openssh-server-"] = "Remv openssh-server"
	}
	for name, effect := range refused {
		if checkPackage(name) == "" {
			t.Errorf("%s accepted", name)
		}
		if out := simulate(name); !strings.Contains(out, effect) {
			t.Errorf("apt-get install %s: expected %q, the reason it is refused:\n%s", name, effect, out)
		}
	}
}
