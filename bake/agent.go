package bake

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"hardbake.dev/hardbake/render"
)

// MaxAgentSize bounds how much of an agent file is read. The agent's
// budget is a few MiB; the bound keeps a mistaken --agent-binary (a disk
// image, /dev/zero through a symlink) from exhausting memory.
const MaxAgentSize = 64 << 20

// AgentRequest says where the machine gets the first-boot agent and which
// binary that is.
type AgentRequest struct {
	// Mode is "seed" (the default when empty: the agent rides on the
	// seed), "url=URL" (downloaded at first boot, pinned by sha256) or
	// "embed" (inside the user-data): the CLI's --agent spelling.
	Mode string
	// Arch is amd64 (the default when empty) or arm64.
	Arch string
	// Binary is the agent itself, for callers that hold it in memory (the
	// service loads it once). It is checked like a file.
	Binary []byte
	// Path is the agent file when Binary is nil. Empty: look it up as
	// hardbake-firstboot-linux-ARCH in SearchDirs.
	Path string
	// SearchDirs are where the agent is looked up (DefaultSearchDirs for
	// the CLI).
	SearchDirs []string
	// SHA256 pins the agent: checked against the binary when there is
	// one; with url mode and no binary it is used as is.
	SHA256 string
}

// Agent is a resolved, checked agent.
type Agent struct {
	render.Agent
	Binary []byte // nil in url mode with only a pinned sha256
	Path   string // the file it was read from; "" when none
}

// PackageAgentDir is where the Debian package installs the agents
// (debian/rules), beside no executable.
const PackageAgentDir = "/usr/lib/hardbake"

// DefaultSearchDirs is where the CLI finds the agent when no path is
// given: $HARDBAKE_AGENT_DIR, then beside the running executable (where
// `make build` puts both), then PackageAgentDir.
func DefaultSearchDirs() []string {
	var dirs []string
	if dir := os.Getenv("HARDBAKE_AGENT_DIR"); dir != "" {
		dirs = append(dirs, dir)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	return append(dirs, PackageAgentDir)
}

var sha256Hex = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// ResolveAgent parses the mode, finds and reads the binary, checks that it
// is a static ELF executable for the architecture, and checks the pin.
// Problems with what the caller gave are *InputError; a missing or broken
// agent found by lookup is a plain error (an installation problem).
func ResolveAgent(req AgentRequest) (*Agent, error) {
	mode := req.Mode
	if mode == "" {
		mode = string(render.AgentSeed)
	}
	arch := req.Arch
	if arch == "" {
		arch = "amd64"
	}
	kind, url, _ := strings.Cut(mode, "=")
	switch render.AgentKind(kind) {
	case render.AgentSeed, render.AgentEmbed:
		if url != "" {
			return nil, inputErr("--agent", fmt.Sprintf("%s takes no value", kind))
		}
	case render.AgentURL:
		if reason := checkAgentURL(url); reason != "" {
			return nil, inputErr("--agent", reason)
		}
	default:
		return nil, inputErr("--agent", fmt.Sprintf("%q is not seed, url=URL or embed", mode))
	}
	if _, ok := elfMachines[arch]; !ok {
		return nil, inputErr("--arch", fmt.Sprintf("%q is not amd64 or arm64", arch))
	}
	if req.SHA256 != "" && !sha256Hex.MatchString(req.SHA256) {
		return nil, inputErr("--agent-sha256", fmt.Sprintf("%q is not a sha256 (64 hex digits)", req.SHA256))
	}
	if render.AgentKind(kind) == render.AgentURL && req.SHA256 != "" && req.Binary == nil && req.Path == "" {
		return &Agent{Agent: render.Agent{Kind: render.AgentURL, Arch: arch, URL: url, SHA256: strings.ToLower(req.SHA256)}}, nil
	}
	bin, path := req.Binary, req.Path
	switch {
	case bin != nil:
		if err := CheckAgentBinary(bin, arch); err != nil {
			return nil, inputErr("--agent-binary", fmt.Sprintf("the agent given is %v", err))
		}
	case path != "":
		var err error
		if bin, err = readAgent(path); err != nil {
			return nil, inputErr("--agent-binary", err.Error())
		}
		if err := CheckAgentBinary(bin, arch); err != nil {
			return nil, inputErr("--agent-binary", fmt.Sprintf("%s is %v", quotePath(path), err))
		}
	default:
		var err error
		if path, err = lookupAgent(arch, req.SearchDirs); err != nil {
			return nil, err
		}
		if bin, err = readAgent(path); err != nil {
			return nil, fmt.Errorf("agent binary: %v; run `make build` or pass --agent-binary", err)
		}
		if err := CheckAgentBinary(bin, arch); err != nil {
			return nil, fmt.Errorf("agent binary %s is %v; run `make build` or pass --agent-binary", quotePath(path), err)
		}
	}
	a := &Agent{Agent: render.NewAgent(render.AgentKind(kind), arch, bin, url), Binary: bin, Path: path}
	if req.SHA256 != "" && !strings.EqualFold(req.SHA256, a.SHA256) {
		src := "the agent given"
		if path != "" {
			src = quotePath(path)
		}
		return nil, inputErr("--agent-sha256", fmt.Sprintf("%s does not match %s (sha256 %s)", req.SHA256, src, a.SHA256))
	}
	return a, nil
}

// lookupAgent finds hardbake-firstboot-linux-ARCH in dirs.
func lookupAgent(arch string, dirs []string) (string, error) {
	name := render.SeedName(arch)
	tried := make([]string, 0, len(dirs))
	for _, d := range dirs {
		p := filepath.Join(d, name)
		tried = append(tried, p)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("agent binary %s not found (looked in: %s); run `make build` or pass --agent-binary", name, strings.Join(tried, ", "))
}

// readAgent reads an agent file: a regular file (never a FIFO, which would
// block, or a device, which may never end) of bounded size.
func readAgent(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a regular file", quotePath(path), describeMode(fi.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxAgentSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", quotePath(path), err)
	}
	if len(data) > MaxAgentSize {
		return nil, fmt.Errorf("%s is larger than %d MiB, too large for an agent", quotePath(path), MaxAgentSize>>20)
	}
	return data, nil
}

// checkAgentURL allows https, and plain http for a local mirror; the pinned
// sha256 protects the binary either way.
func checkAgentURL(u string) string {
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return fmt.Sprintf("url=%q must be an https (or local http) URL", u)
	}
	if strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return fmt.Sprintf("url=%q contains spaces or control characters", u)
	}
	return ""
}

var elfMachines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// CheckAgentBinary reports why bin cannot run as the agent on a fresh
// arch machine, or nil: it must be a 64-bit little-endian ELF executable
// for arch, statically linked (no interpreter, no needed libraries),
// either ET_EXEC or a static PIE (ET_DYN marked DF_1_PIE, which tells it
// from a shared library), with its entry point in an executable segment.
// The agent runs before any package is installed, from a seed mounted as
// it is; a dynamic or foreign binary fails there, after the machine is
// already up and exposed.
func CheckAgentBinary(bin []byte, arch string) (err error) {
	want, ok := elfMachines[arch]
	if !ok {
		return fmt.Errorf("for an unknown architecture %q", arch)
	}
	// debug/elf is hardened, but a panic on a hostile file must still be
	// a refusal, not a crash.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("not a valid ELF file (malformed: %v)", r)
		}
	}()
	if len(bin) < 4 || !bytes.Equal(bin[:4], []byte(elf.ELFMAG)) {
		return errors.New("not an ELF file (no ELF magic number): the agent must be a static Linux executable")
	}
	// Class and byte order first, from the identification bytes: a
	// 32-bit file would otherwise fail deeper in the parse with a less
	// useful message.
	if len(bin) > int(elf.EI_DATA) {
		if c := elf.Class(bin[elf.EI_CLASS]); c != elf.ELFCLASS64 {
			return fmt.Errorf("a %v ELF file, not a 64-bit one (ELFCLASS64) for %s", c, arch)
		}
		if d := elf.Data(bin[elf.EI_DATA]); d != elf.ELFDATA2LSB {
			return fmt.Errorf("a %v ELF file, not a little-endian one for %s", d, arch)
		}
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not a valid ELF file (%v)", err)
	}
	if f.Machine != want {
		return fmt.Errorf("built for %v, not for %s (%v)", f.Machine, arch, want)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("built for %v, not for Linux", f.OSABI)
	}
	var dyn *elf.Prog
	execEntry := false
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			interp := make([]byte, min(p.Filesz, 256))
			n, _ := p.ReadAt(interp, 0)
			return fmt.Errorf("dynamically linked (interpreter %q): build it static (CGO_ENABLED=0)", strings.TrimRight(string(interp[:n]), "\x00"))
		case elf.PT_DYNAMIC:
			dyn = p
		case elf.PT_LOAD:
			if p.Flags&elf.PF_X != 0 && f.Entry >= p.Vaddr && f.Entry-p.Vaddr < p.Memsz {
				execEntry = true
			}
		}
	}
	needed, pie, err := dynamicInfo(dyn)
	if err != nil {
		return err
	}
	if needed > 0 {
		return fmt.Errorf("dynamically linked (needs %d shared librar%s): build it static (CGO_ENABLED=0)", needed, map[bool]string{true: "y", false: "ies"}[needed == 1])
	}
	switch f.Type {
	case elf.ET_EXEC:
	case elf.ET_DYN:
		if !pie {
			return errors.New("a shared library (ET_DYN without DF_1_PIE), not an executable")
		}
	default:
		return fmt.Errorf("an ELF %v file, not an executable", f.Type)
	}
	if !execEntry {
		return fmt.Errorf("not runnable: its entry point %#x is in no executable segment", f.Entry)
	}
	return nil
}

// dynamicInfo reads a PT_DYNAMIC segment (straight from the program
// header, so stripped binaries without section headers are checked too):
// how many DT_NEEDED entries it has and whether DT_FLAGS_1 has DF_1_PIE.
func dynamicInfo(p *elf.Prog) (needed int, pie bool, err error) {
	if p == nil {
		return 0, false, nil
	}
	const entSize = 16 // Elf64_Dyn: d_tag, d_val, 8 bytes each
	data, err := io.ReadAll(io.LimitReader(p.Open(), int64(p.Filesz)))
	if err != nil || uint64(len(data)) != p.Filesz {
		return 0, false, fmt.Errorf("not a valid ELF file (dynamic segment unreadable: %d of %d bytes, %v)", len(data), p.Filesz, err)
	}
	for off := 0; off+entSize <= len(data); off += entSize {
		tag := elf.DynTag(binary.LittleEndian.Uint64(data[off:]))
		val := binary.LittleEndian.Uint64(data[off+8:])
		switch tag {
		case elf.DT_NULL:
			return needed, pie, nil
		case elf.DT_NEEDED:
			needed++
		case elf.DT_FLAGS_1:
			pie = val&uint64(elf.DF_1_PIE) != 0
		}
	}
	return needed, pie, nil
}

// quotePath quotes a path for a message when it holds anything that could
// forge output (control characters, quotes, spaces); plain paths stay as
// they are, so common messages read naturally.
func quotePath(p string) string {
	if strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == '"' || r == '\'' || r == 0x7f || r > '~' }) {
		return fmt.Sprintf("%q", p)
	}
	return p
}

// describeMode names a file type for messages.
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsRegular():
		return "a regular file"
	default:
		return "not a regular file"
	}
}
