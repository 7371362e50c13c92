package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hardbake.dev/hardbake/bake/baketest"
)

// mkagentMain is the scripts' `mkagent ARCH FILE`: it writes a minimal
// static ELF executable for ARCH, which passes bake's agent check.
func mkagentMain() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkagent ARCH FILE")
		os.Exit(2)
	}
	if err := os.WriteFile(os.Args[2], baketest.StaticELF(os.Args[1]), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDwbRPMtfACh8WYvLTXcOxfHbAmImwary/CCUrpLChl4 ops@example.com"

// workdir makes a directory with an order and an agent, and returns it.
func workdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte, mode fs.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("order.yaml", []byte("hostname: web-1\ninstance_id: vps-1\nssh_keys: [\""+testKey+"\"]\n"), 0o644)
	write("key.pub", []byte(testKey+"\n"), 0o644)
	write("agent", baketest.StaticELF("amd64"), 0o755)
	write("agent-arm64", baketest.StaticELF("arm64"), 0o755)
	write("script", []byte("#!/bin/sh\necho I am not an agent\n"), 0o755)
	return dir
}

// tree records every path under dir with its type, mode and content, so
// a refused command can be shown to have changed nothing.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func runIn(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "$WORK", dir)
	}
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	return code, stderr.String()
}

// TestOutputRefusals: -o never replaces an input, a device node, a FIFO,
// or a directory where a file is expected; a refusal is exit 2, names -o
// and why, and leaves everything as it was.
func TestOutputRefusals(t *testing.T) {
	base := []string{"--order", "$WORK/order.yaml", "--agent-binary", "$WORK/agent"}
	type target struct {
		name  string
		setup func(t *testing.T, dir string) string // returns -o
		want  string
	}
	fifo := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dirWithFiles := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "www")
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "index.html"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fileTargets := []target{
		{"the order", func(_ *testing.T, dir string) string { return filepath.Join(dir, "order.yaml") }, "order.yaml is the file given to --order; refusing to overwrite an input"},
		{"the agent", func(_ *testing.T, dir string) string { return filepath.Join(dir, "agent") }, "is the file given to --agent-binary"},
		{"the key file", func(_ *testing.T, dir string) string { return filepath.Join(dir, "key.pub") }, "is the file given to --ssh-key-file"},
		{"a symlink to the order", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "link")
			if err := os.Symlink("order.yaml", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "link is the file given to --order"},
		{"/dev/null", func(*testing.T, string) string { return "/dev/null" }, "/dev/null is a character device, not a regular file"},
		{"a FIFO", fifo, "fifo is a FIFO, not a regular file"},
		{"a directory with files", dirWithFiles, "www is a directory, not a regular file"},
	}
	dirTargets := []target{
		{"the order", func(_ *testing.T, dir string) string { return filepath.Join(dir, "order.yaml") }, "order.yaml is a regular file, not a directory"},
		{"/dev/null", func(*testing.T, string) string { return "/dev/null" }, "/dev/null is a character device, not a directory"},
		{"a FIFO", fifo, "fifo is a FIFO, not a directory"},
		{"a directory whose meta-data is the order", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "out")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(filepath.Join(dir, "order.yaml"), filepath.Join(p, "meta-data")); err != nil {
				t.Fatal(err)
			}
			return p
		}, "meta-data is the file given to --order"},
		{"a directory whose user-data is a symlink", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "out")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc/passwd", filepath.Join(p, "user-data")); err != nil {
				t.Fatal(err)
			}
			return p
		}, "user-data is a symbolic link, not a regular file"},
	}
	commands := []struct {
		name    string
		args    []string
		targets []target
	}{
		{"render", []string{"render", "--ssh-key-file", "$WORK/key.pub"}, dirTargets},
		{"iso", []string{"iso", "--ssh-key-file", "$WORK/key.pub"}, fileTargets},
		{"iso vfat", []string{"iso", "--format", "vfat", "--ssh-key-file", "$WORK/key.pub"}, fileTargets},
		{"iso dir", []string{"iso", "--format", "dir", "--ssh-key-file", "$WORK/key.pub"}, dirTargets},
	}
	for _, c := range commands {
		for _, tg := range c.targets {
			t.Run(c.name+"/"+tg.name, func(t *testing.T) {
				dir := workdir(t)
				out := tg.setup(t, dir)
				before := tree(t, dir)
				args := append(append(append([]string{}, c.args...), base...), "-o", out)
				code, stderr := runIn(t, dir, args...)
				if code != exitInput || !strings.Contains(stderr, "hardbake: -o: ") || !strings.Contains(stderr, tg.want) {
					t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 and -o: …%s", code, stderr, tg.want)
				}
				if strings.Contains(stderr, "wrote") {
					t.Errorf("a refusal claims to have written: %s", stderr)
				}
				if after := tree(t, dir); after != before {
					t.Errorf("the work directory changed:\n%s\n->\n%s", before, after)
				}
			})
		}
	}
}

// TestOutputIntoDirectoryWithFiles: render and iso --format dir write
// their files into a directory that holds other files, leave those and
// the directory's mode alone, and say which earlier seed files remain.
func TestOutputIntoDirectoryWithFiles(t *testing.T) {
	for _, args := range [][]string{
		{"render", "--order", "$WORK/order.yaml", "--agent-binary", "$WORK/agent", "-o", "$WORK/www"},
		{"iso", "--format", "dir", "--order", "$WORK/order.yaml", "--agent-binary", "$WORK/agent", "-o", "$WORK/www"},
	} {
		t.Run(args[0], func(t *testing.T) {
			dir := workdir(t)
			www := filepath.Join(dir, "www")
			if err := os.Mkdir(www, 0o2775); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(www, fs.ModeSetgid|0o775); err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string]string{"index.html": "mine", "network-config": "version: 2\n", "meta-data": "instance-id: old\n"} {
				if err := os.WriteFile(filepath.Join(www, name), []byte(data), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			code, stderr := runIn(t, dir, args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stderr, "www/network-config was already there and is not part of this seed; left as it is") {
				t.Errorf("no warning about the kept network-config:\n%s", stderr)
			}
			fi, err := os.Stat(www)
			if err != nil || fi.Mode() != fs.ModeDir|fs.ModeSetgid|0o775 {
				t.Errorf("directory mode now %v (%v)", fi.Mode(), err)
			}
			for name, want := range map[string]string{"index.html": "mine", "network-config": "version: 2\n"} {
				got, err := os.ReadFile(filepath.Join(www, name))
				if err != nil || string(got) != want {
					t.Errorf("%s: %q (%v)", name, got, err)
				}
				if fi, _ := os.Stat(filepath.Join(www, name)); fi.Mode() != 0o640 {
					t.Errorf("%s: mode now %v", name, fi.Mode())
				}
			}
			if md, _ := os.ReadFile(filepath.Join(www, "meta-data")); !strings.Contains(string(md), "instance-id: vps-1") {
				t.Errorf("meta-data not replaced: %q", md)
			}
		})
	}
}

// TestAgentBinaryChecked: --agent-binary must be a static ELF for --arch;
// anything else is exit 2 naming the flag and why, with nothing written.
func TestAgentBinaryChecked(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--agent-binary", "$WORK/script"}, "--agent-binary: $WORK/script is not an ELF file"},
		{[]string{"--agent-binary", "$WORK/agent-arm64"}, "--agent-binary: $WORK/agent-arm64 is built for EM_AARCH64, not for amd64"},
		{[]string{"--agent-binary", "$WORK/agent", "--arch", "arm64"}, "--agent-binary: $WORK/agent is built for EM_X86_64, not for arm64"},
		{[]string{"--agent-binary", "/dev/zero"}, "--agent-binary: /dev/zero is a character device, not a regular file"},
		{[]string{"--agent-binary", "$WORK"}, "--agent-binary: $WORK is a directory"},
		{[]string{"--agent-binary", "$WORK/missing"}, "--agent-binary: stat $WORK/missing: no such file or directory"},
		{[]string{"--agent-binary", "$WORK/script", "--agent", "embed"}, "--agent-binary: $WORK/script is not an ELF file"},
		{[]string{"--agent-binary", "$WORK/script", "--agent", "url=https://a.example/x"}, "--agent-binary: $WORK/script is not an ELF file"},
	}
	for _, tc := range tests {
		for _, cmd := range []string{"render", "iso"} {
			t.Run(cmd+" "+strings.Join(tc.args, " "), func(t *testing.T) {
				dir := workdir(t)
				before := tree(t, dir)
				args := append([]string{cmd, "--order", "$WORK/order.yaml", "-o", "$WORK/out"}, tc.args...)
				code, stderr := runIn(t, dir, args...)
				want := strings.ReplaceAll(tc.want, "$WORK", dir)
				if code != exitInput || !strings.Contains(stderr, "hardbake: "+want) {
					t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr, want)
				}
				if after := tree(t, dir); after != before {
					t.Error("something was written")
				}
			})
		}
	}
	t.Run("lookup", func(t *testing.T) {
		dir := workdir(t)
		if err := os.WriteFile(filepath.Join(dir, "hardbake-firstboot-linux-amd64"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("HARDBAKE_AGENT_DIR", dir)
		code, stderr := runIn(t, dir, "render", "--order", "$WORK/order.yaml", "-o", "-")
		if code != exitFailure || !strings.Contains(stderr, "hardbake-firstboot-linux-amd64 is not an ELF file") {
			t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 naming the agent found", code, stderr)
		}
	})
}

// TestConcurrentRenders runs two renders of different orders into one
// directory at the same time, many times, and never finds one order's
// user-data beside the other's meta-data.
func TestConcurrentRenders(t *testing.T) {
	dir := workdir(t)
	for _, id := range []string{"a", "b"} {
		order := "hostname: web-" + id + "\ninstance_id: vps-" + id + "\nssh_keys: [\"" + testKey + "\"]\n"
		if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(order), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	instanceUD := regexp.MustCompile(`(?m)^# hardbake: profile \S+, instance (\S+),`)
	instanceMD := regexp.MustCompile(`(?m)^instance-id: (\S+)$`)
	deadline := time.Now().Add(90 * time.Second)
	rounds := 0
	for ; rounds < 60 && time.Now().Before(deadline); rounds++ {
		if rounds%3 == 0 {
			if err := os.RemoveAll(out); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		codes := make([]int, 2)
		logs := make([]string, 2)
		for i, id := range []string{"a", "b"} {
			wg.Go(func() {
				codes[i], logs[i] = runIn(t, dir, "render", "--order", "$WORK/"+id+".yaml", "--agent-binary", "$WORK/agent", "-o", "$WORK/out")
			})
		}
		wg.Wait()
		for i := range codes {
			if codes[i] != exitOK {
				t.Fatalf("round %d: exit %d: %s", rounds, codes[i], logs[i])
			}
		}
		ud, err1 := os.ReadFile(filepath.Join(out, "user-data"))
		md, err2 := os.ReadFile(filepath.Join(out, "meta-data"))
		if err1 != nil || err2 != nil {
			t.Fatalf("round %d: %v %v", rounds, err1, err2)
		}
		u, m := instanceUD.FindSubmatch(ud), instanceMD.FindSubmatch(md)
		if u == nil || m == nil {
			t.Fatalf("round %d: cannot find the instance in user-data or meta-data", rounds)
		}
		if !bytes.Equal(u[1], m[1]) {
			t.Fatalf("round %d: user-data of %s beside meta-data of %s", rounds, u[1], m[1])
		}
	}
	t.Logf("%d rounds, never mixed", rounds)
}
