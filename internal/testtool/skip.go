package testtool

import (
	"fmt"
	"os"
	"testing"
)

// SkipOrFail skips a real-tool test that cannot run here (no root, no
// netlink permission, a package's stock configuration missing), unless
// HARDBAKE_REQUIRE_TOOLS=1, where it fails: in CI every real-tool test must
// really run.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s (HARDBAKE_REQUIRE_TOOLS=1: a real-tool test may not skip)", msg)
	}
	t.Skip(msg)
}

// RequireRoot skips (or, under HARDBAKE_REQUIRE_TOOLS=1, fails) a test
// that needs root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root")
	}
}

// SSHDPrivsepDir creates /run/sshd, the privilege separation directory
// `sshd -t`, `sshd -T` and a running sshd insist on, when it is missing
// (it exists only after sshd once ran, or a package created it): a test
// must not depend on leftovers of another test or of the machine's past.
// /run is a tmpfs, so it is gone after the next reboot anyway; it is left
// in place because tests running in parallel may use it.
func SSHDPrivsepDir(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		SkipOrFail(t, "cannot create /run/sshd: %v", err)
	}
}
