// Package testtool lets tests use real system tools (sshd, nft, cloud-init…)
// where they are installed, and insist on them in CI.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of tool. When the tool is missing the test is
// skipped, unless HARDBAKE_REQUIRE_TOOLS=1 (set in CI), where a missing tool
// is a failure: a skipped real-tool test proves nothing.
func Require(t testing.TB, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} { // not on a non-root PATH
		if p := dir + "/" + tool; fileExists(p) {
			return p
		}
	}
	if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is required (HARDBAKE_REQUIRE_TOOLS=1) but not installed; run .ci/deps", tool)
	}
	t.Skipf("%s not installed", tool)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
