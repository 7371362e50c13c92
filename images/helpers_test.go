package images

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hardbake.dev/hardbake/internal/testtool"
)

// requireTool is testtool.Require: skip without the tool, fail in CI.
func requireTool(t testing.TB, name string) string { return testtool.Require(t, name) }

// run executes a tool and returns its combined output, failing the test
// on a non-zero exit.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	bin := requireTool(t, name)
	cmd := exec.Command(bin, args...)
	// A fixed locale keeps the tools' output parseable.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "MTOOLS_SKIP_CHECK=1")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// sampleUserData returns about 8 KB of plausible #cloud-config, the size
// the real renderer produces.
func sampleUserData() []byte {
	var b bytes.Buffer
	b.WriteString("#cloud-config\npackage_update: true\npackage_upgrade: true\nwrite_files:\n")
	for i := 0; b.Len() < 8000; i++ {
		fmt.Fprintf(&b, "  - path: /etc/hardbake/file-%03d.conf\n    permissions: '0644'\n    content: |\n      # generated line %d for the seed benchmark\n", i, i)
	}
	return b.Bytes()
}

// sampleBinary returns deterministic pseudo-random bytes standing in for
// the agent binary.
func sampleBinary(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// sampleFiles is a realistic seed: the two NoCloud documents, a network
// config with a tighter mode, an executable agent and an empty file.
func sampleFiles() []File {
	return []File{
		{Name: "user-data", Data: sampleUserData(), Mode: 0o644},
		{Name: "meta-data", Data: []byte("instance-id: iid-hardbake-test\nlocal-hostname: vps1\n")},
		{Name: "network-config", Data: []byte("version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"), Mode: 0o600},
		{Name: "hardbake-firstboot-amd64", Data: sampleBinary(300_000), Mode: 0o755},
		// Same 8.3 prefix as the amd64 agent: exercises short-name
		// collision handling in both ISO9660 and FAT.
		{Name: "hardbake-firstboot-arm64", Data: sampleBinary(70_001)[1:], Mode: 0o755},
		{Name: "empty", Data: nil, Mode: 0o644},
	}
}

// want describes what a reader must find for one file.
type want struct {
	size int64
	sum  string
	mode fs.FileMode
}

func expected(files []File) map[string]want {
	m := make(map[string]want, len(files))
	for _, f := range files {
		mode := f.Mode
		if mode == 0 {
			mode = defaultMode
		}
		m[f.Name] = want{size: int64(len(f.Data)), sum: sha256hex(f.Data), mode: mode}
	}
	return m
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// parseMode turns "-rwxr-xr-x" into permission bits.
func parseMode(t testing.TB, s string) fs.FileMode {
	t.Helper()
	if len(s) != 10 {
		t.Fatalf("bad mode string %q", s)
	}
	var m fs.FileMode
	for i, c := range s[1:] {
		if c != '-' {
			m |= 1 << (8 - i)
		}
	}
	return m
}

// listDir returns the names in dir, for leftover checks.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// checkExtracted compares a directory of extracted files with the input:
// exactly the same names, sizes, contents and (if checkModes) modes.
func checkExtracted(t testing.TB, dir string, w map[string]want, checkModes bool) {
	t.Helper()
	names := listDir(t, dir)
	if len(names) != len(w) {
		t.Errorf("extracted %v, want %d files", names, len(w))
	}
	for name, exp := range w {
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("read extracted %s: %v", name, err)
			continue
		}
		if got := sha256hex(data); got != exp.sum {
			t.Errorf("%s: sha256 %s, want %s", name, got, exp.sum)
		}
		if checkModes {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != exp.mode {
				t.Errorf("%s: extracted mode %v, want %v", name, fi.Mode().Perm(), exp.mode)
			}
		}
	}
}

// writeSeed builds an ISO or VFAT seed in memory and stores it at path (a
// new file) for the real tools to read. Writing seeds safely is package
// bake's job and is tested there.
func writeSeed(format Format, path string, files []File) error {
	img, err := Build(format, files)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := img.CopyTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
