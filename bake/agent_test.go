package bake

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"hardbake.dev/hardbake/bake/baketest"
	"hardbake.dev/hardbake/internal/testtool"
	"hardbake.dev/hardbake/render"
)

func TestCheckAgentBinary(t *testing.T) {
	arm := elf.EM_AARCH64
	tests := []struct {
		name string
		bin  []byte
		arch string
		want string // "" accepts; else a part of the reason
	}{
		{"static amd64", baketest.StaticELF("amd64"), "amd64", ""},
		{"static arm64", baketest.StaticELF("arm64"), "arm64", ""},
		{"static PIE", baketest.ELF{Type: elf.ET_DYN, PIE: true}.Bytes(), "amd64", ""},
		{"arm64 for amd64", baketest.StaticELF("arm64"), "amd64", "built for EM_AARCH64, not for amd64 (EM_X86_64)"},
		{"amd64 for arm64", baketest.StaticELF("amd64"), "arm64", "built for EM_X86_64, not for arm64 (EM_AARCH64)"},
		{"32-bit", baketest.ELF{Class: elf.ELFCLASS32}.Bytes(), "amd64", "not a 64-bit one"},
		{"interpreter", baketest.ELF{Interp: "/lib64/ld-linux-x86-64.so.2"}.Bytes(), "amd64", `dynamically linked (interpreter "/lib64/ld-linux-x86-64.so.2")`},
		{"needed libraries", baketest.ELF{Needed: 2}.Bytes(), "amd64", "needs 2 shared libraries"},
		{"PIE needing a library", baketest.ELF{Type: elf.ET_DYN, PIE: true, Needed: 1}.Bytes(), "amd64", "needs 1 shared library"},
		{"shared library", baketest.ELF{Type: elf.ET_DYN}.Bytes(), "amd64", "a shared library"},
		{"relocatable object", baketest.ELF{Type: elf.ET_REL}.Bytes(), "amd64", "not an executable"},
		{"core dump", baketest.ELF{Type: elf.ET_CORE, Machine: arm}.Bytes(), "arm64", "not an executable"},
		{"entry not executable", baketest.ELF{NoExec: true}.Bytes(), "amd64", "in no executable segment"},
		{"shell script", []byte("#!/bin/sh\necho hardened\n"), "amd64", "not an ELF file"},
		{"empty", nil, "amd64", "not an ELF file"},
		{"truncated header", baketest.StaticELF("amd64")[:40], "amd64", "not a valid ELF file"},
		{"unknown arch", baketest.StaticELF("amd64"), "riscv64", "unknown architecture"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckAgentBinary(tc.bin, tc.arch)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestCheckAgentBinaryRealTools checks real compiler output: static Go
// binaries for both arches (what `make build` makes), a glibc static PIE,
// a dynamic executable and a shared library.
func TestCheckAgentBinaryRealTools(t *testing.T) {
	goTool := testtool.Require(t, "go")
	gcc := testtool.Require(t, "gcc")
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("go.mod", "module hello\n\ngo 1.22\n")
	write("main.go", "package main\n\nfunc main() { println(\"hi\") }\n")
	src := write("hello.c", "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n")
	build := func(out string, env []string, name string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		data, err := os.ReadFile(filepath.Join(dir, out))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	goAMD := build("go-amd64", []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod"}, goTool, "build", "-o", "go-amd64", ".")
	goARM := build("go-arm64", []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "GOFLAGS=-mod=mod"}, goTool, "build", "-o", "go-arm64", ".")
	staticPIE := build("spie", nil, gcc, "-static-pie", "-o", "spie", src)
	dynamic := build("dyn", nil, gcc, "-o", "dyn", src)
	shared := build("lib.so", nil, gcc, "-shared", "-fPIC", "-o", "lib.so", src)
	tests := []struct {
		name string
		bin  []byte
		arch string
		want string
	}{
		{"go static amd64", goAMD, "amd64", ""},
		{"go static arm64", goARM, "arm64", ""},
		{"go arm64 for amd64", goARM, "amd64", "built for EM_AARCH64"},
		{"gcc static-pie", staticPIE, "amd64", ""},
		{"gcc dynamic", dynamic, "amd64", "dynamically linked (interpreter"},
		{"gcc shared library", shared, "amd64", "dynamically linked (needs"},
	}
	for _, tc := range tests {
		err := CheckAgentBinary(tc.bin, tc.arch)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzCheckAgentBinary(f *testing.F) {
	f.Add(baketest.StaticELF("amd64"))
	f.Add(baketest.ELF{Type: elf.ET_DYN, PIE: true, Needed: 1}.Bytes())
	f.Add(baketest.ELF{Interp: "/lib/ld.so"}.Bytes())
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, bin []byte) {
		for _, arch := range []string{"amd64", "arm64"} {
			err := CheckAgentBinary(bin, arch)
			if err == nil {
				// Whatever passes must really be what the check promises.
				ef, perr := elf.NewFile(strings.NewReader(string(bin)))
				if perr != nil {
					t.Fatalf("accepted a file debug/elf cannot parse: %v", perr)
				}
				if ef.Class != elf.ELFCLASS64 || ef.Machine != elfMachines[arch] {
					t.Fatalf("accepted class %v machine %v for %s", ef.Class, ef.Machine, arch)
				}
				for _, p := range ef.Progs {
					if p.Type == elf.PT_INTERP {
						t.Fatal("accepted a file with PT_INTERP")
					}
				}
			}
		}
	})
}

func TestResolveAgent(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("agent", baketest.StaticELF("amd64"))
	script := file("script", []byte("#!/bin/sh\n"))
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	lookupDir := filepath.Join(dir, "lookup")
	if err := os.Mkdir(lookupDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lookupDir, render.SeedName("amd64")), []byte("not an agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lookupDir, render.SeedName("arm64")), baketest.StaticELF("arm64"), 0o755); err != nil {
		t.Fatal(err)
	}
	const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name  string
		req   AgentRequest
		field string // the InputError's field; "" with want: a plain error
		want  string // "" succeeds
	}{
		{"seed", AgentRequest{Path: good}, "", ""},
		{"embed", AgentRequest{Mode: "embed", Path: good}, "", ""},
		{"in memory", AgentRequest{Binary: baketest.StaticELF("amd64")}, "", ""},
		{"url with pin only", AgentRequest{Mode: "url=https://a.example/agent", SHA256: sha}, "", ""},
		{"lookup arm64", AgentRequest{Arch: "arm64", SearchDirs: []string{lookupDir}}, "", ""},
		{"bad mode", AgentRequest{Mode: "ftp://x", Path: good}, "--agent", `"ftp://x" is not seed, url=URL or embed`},
		{"seed with value", AgentRequest{Mode: "seed=x", Path: good}, "--agent", "takes no value"},
		{"url scheme", AgentRequest{Mode: "url=ftp://x", Path: good}, "--agent", `url="ftp://x" must be an`},
		{"bad arch", AgentRequest{Arch: "riscv64", Path: good}, "--arch", `"riscv64" is not amd64 or arm64`},
		{"bad sha", AgentRequest{Path: good, SHA256: "abc"}, "--agent-sha256", "not a sha256"},
		{"sha mismatch", AgentRequest{Path: good, SHA256: sha}, "--agent-sha256", "does not match"},
		{"missing file", AgentRequest{Path: filepath.Join(dir, "nope")}, "--agent-binary", "no such file"},
		{"script", AgentRequest{Path: script}, "--agent-binary", "is not an ELF file"},
		{"wrong arch", AgentRequest{Path: good, Arch: "arm64"}, "--agent-binary", "built for EM_X86_64, not for arm64"},
		{"in memory script", AgentRequest{Binary: []byte("x")}, "--agent-binary", "not an ELF file"},
		{"fifo", AgentRequest{Path: fifo}, "--agent-binary", "is a FIFO, not a regular file"},
		{"device", AgentRequest{Path: "/dev/zero"}, "--agent-binary", "is a character device"},
		{"directory", AgentRequest{Path: dir}, "--agent-binary", "is a directory"},
		{"lookup not ELF", AgentRequest{SearchDirs: []string{lookupDir}}, "", "is not an ELF file (no ELF magic number): the agent must be a static Linux executable; run `make build`"},
		{"lookup missing", AgentRequest{SearchDirs: []string{dir}}, "", "agent binary hardbake-firstboot-linux-amd64 not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ResolveAgent(tc.req)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if a.Kind == render.AgentURL && a.Binary == nil && a.SHA256 != sha {
					t.Errorf("pinned sha256 %q", a.SHA256)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			var ie *InputError
			if isInput := errors.As(err, &ie); isInput != (tc.field != "") || (isInput && ie.Field != tc.field) {
				t.Errorf("error %#v: want input error on %q", err, tc.field)
			}
		})
	}
}

func TestDefaultSearchDirs(t *testing.T) {
	t.Setenv("HARDBAKE_AGENT_DIR", "/opt/agents")
	dirs := DefaultSearchDirs()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	bindir := filepath.Dir(exe)
	want := []string{"/opt/agents", filepath.Join(bindir, "..", "lib", "hardbake"), bindir, PackageAgentDir}
	if strings.Join(dirs, ":") != strings.Join(want, ":") {
		t.Errorf("DefaultSearchDirs() = %v, want %v", dirs, want)
	}
	t.Setenv("HARDBAKE_AGENT_DIR", "")
	if dirs := DefaultSearchDirs(); len(dirs) != 3 || dirs[2] != PackageAgentDir {
		t.Errorf("without HARDBAKE_AGENT_DIR: %v", dirs)
	}
}

func TestSearchDirs(t *testing.T) {
	for _, tc := range []struct {
		name, env, exe string
		want           []string
	}{
		{"installed by the package", "", "/usr/bin/hardbake",
			[]string{"/usr/lib/hardbake", "/usr/bin"}},
		{"installed under /usr/local", "", "/usr/local/bin/hardbake",
			[]string{"/usr/local/lib/hardbake", "/usr/local/bin", PackageAgentDir}},
		{"make build", "", "/src/hardbake/bin/hardbake",
			[]string{"/src/hardbake/lib/hardbake", "/src/hardbake/bin", PackageAgentDir}},
		{"the environment first", "/opt/agents", "/usr/bin/hardbake",
			[]string{"/opt/agents", "/usr/lib/hardbake", "/usr/bin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := searchDirs(tc.env, tc.exe); !slices.Equal(got, tc.want) {
				t.Errorf("searchDirs(%q, %q) = %q, want %q", tc.env, tc.exe, got, tc.want)
			}
		})
	}
}
