package templates

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hardbake.dev/hardbake/internal/testtool"
	"hardbake.dev/hardbake/plan"
)

// launcherEnv is a temp root the launcher runs in with the real sh: fake
// blkid/mount/umount/python3 in front of the real tools on PATH, a seed
// directory the fake mount "mounts", and HARDBAKE_ROOT pointing at root.
type launcherEnv struct {
	t                   *testing.T
	root, seed, bin, tm string
	env                 []string
	planArg             string // the plan argument; empty: the plan JSON itself
}

const launcherPlan = `{"version":1,"ssh":{"port":50022}}`

func newLauncherEnv(t *testing.T) *launcherEnv {
	base := t.TempDir()
	e := &launcherEnv{t: t, root: filepath.Join(base, "root"), seed: filepath.Join(base, "seed"),
		bin: filepath.Join(base, "bin"), tm: filepath.Join(base, "tmp")}
	for _, d := range []string{e.root, e.seed, e.bin, e.tm} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.tool("blkid", `[ "$2" = cidata ] && [ -f "$SEED/.present" ] && echo /dev/sr0`)
	e.tool("mount", `[ -f "$SEED/.mountable" ] || { echo "mount: $3: wrong fs type" >&2; exit 32; }; cp -a "$SEED/." "$4/"`)
	e.tool("umount", `rm -rf "$1"/* "$1"/.[!.]*`)
	e.tool("python3", `echo "urllib.error.URLError: <urlopen error [Errno 111] Connection refused>" >&2; exit 1`)
	e.env = append(os.Environ(), "HARDBAKE_ROOT="+e.root, "SEED="+e.seed, "TMPDIR="+e.tm,
		"PATH="+e.bin+":"+os.Getenv("PATH"))
	return e
}

func (e *launcherEnv) tool(name, body string) {
	if err := os.WriteFile(filepath.Join(e.bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		e.t.Fatal(err)
	}
}

func (e *launcherEnv) write(p string, data []byte, mode os.FileMode) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		e.t.Fatal(err)
	}
}

// run runs the launcher as cloud-init does: sh -c SCRIPT NAME ARGS...
func (e *launcherEnv) run(kind, src, agentSHA string) (int, string, string) {
	arg := e.planArg
	if arg == "" {
		arg = launcherPlan
	}
	sum := sha256.Sum256([]byte(launcherPlan))
	cmd := exec.Command("sh", "-c", Bootcmd(), "hardbake-firstboot", kind, src, agentSHA, arg, hex.EncodeToString(sum[:]))
	cmd.Env = e.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// fakeAgent is a shell script standing in for the agent: it records its
// arguments and exits with the given code (a report of its own first).
func fakeAgent(code string) []byte {
	return []byte("#!/bin/sh\necho \"$@\" > \"$HARDBAKE_ROOT/agent-args\"\n" +
		"[ " + code + " = 0 ] || echo '{\"result\":\"from the agent\"}' > \"$HARDBAKE_ROOT/var/lib/hardbake/report.json\"\nexit " + code + "\n")
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func gz(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const agentName = "hardbake-firstboot-linux-amd64"

// Every way the launcher stops before the agent's first step leaves a
// report (status failed, with the reason) and a "hardbake: FAILED" line,
// installs nothing and leaves no temp file; SSH is never touched (the
// launcher has nothing that could).
func TestLauncherFailures(t *testing.T) {
	testtool.Require(t, "sh")
	good := fakeAgent("0")
	for _, tc := range []struct {
		name           string
		setup          func(e *launcherEnv)
		kind, src, sum string
		want           string
	}{
		{"no seed device", func(e *launcherEnv) {}, "seed", agentName, sha(good), "no cidata seed device"},
		{"seed does not mount", func(e *launcherEnv) { e.write(filepath.Join(e.seed, ".present"), nil, 0o644) },
			"seed", agentName, sha(good), "cannot mount seed /dev/sr0"},
		{"agent missing from the seed", func(e *launcherEnv) {
			e.write(filepath.Join(e.seed, ".present"), nil, 0o644)
			e.write(filepath.Join(e.seed, ".mountable"), nil, 0o644)
		}, "seed", agentName, sha(good), "no " + agentName + " on the seed (wrong --arch for"},
		{"agent digest mismatch", func(e *launcherEnv) {
			e.write(filepath.Join(e.seed, ".present"), nil, 0o644)
			e.write(filepath.Join(e.seed, ".mountable"), nil, 0o644)
			e.write(filepath.Join(e.seed, agentName), []byte("#!/bin/sh\nexit 0\n"), 0o755)
		}, "seed", agentName, sha(good), "agent sha256 does not match the pin"},
		{"download fails", func(e *launcherEnv) {}, "url", "http://10.0.2.100/agent\"\\x", sha(good), `download of http://10.0.2.100/agent"\x failed`},
		{"embedded copy is not gzip", func(e *launcherEnv) { e.write(filepath.Join(e.tm, "agent.gz"), []byte("junk"), 0o644) },
			"embed", "", sha(good), "cannot unpack the embedded agent"},
		{"unknown source", func(e *launcherEnv) {}, "carrier-pigeon", "x", sha(good), "unknown agent source carrier-pigeon"},
		{"agent of another architecture", func(e *launcherEnv) {
			e.write(filepath.Join(e.seed, ".present"), nil, 0o644)
			e.write(filepath.Join(e.seed, ".mountable"), nil, 0o644)
			e.write(filepath.Join(e.seed, agentName), []byte("\x7fELF not for this machine"), 0o755)
		}, "seed", agentName, sha([]byte("\x7fELF not for this machine")), "the agent did not run to its end (exit 126"},
		{"agent killed", func(e *launcherEnv) {
			e.write(filepath.Join(e.seed, ".present"), nil, 0o644)
			e.write(filepath.Join(e.seed, ".mountable"), nil, 0o644)
			e.write(filepath.Join(e.seed, agentName), []byte("#!/bin/sh\nkill -9 $$\n"), 0o755)
		}, "seed", agentName, sha([]byte("#!/bin/sh\nkill -9 $$\n")), "the agent did not run to its end (exit 137"},
		{"state directory unwritable", func(e *launcherEnv) {
			e.write(filepath.Join(e.root, "usr/local/sbin/hardbake-firstboot"), good, 0o755)
			e.write(filepath.Join(e.root, "var/lib/hardbake"), []byte("a file, not a directory"), 0o644)
		}, "seed", agentName, sha(good), "cannot create " /* then the report cannot be written either */},
		{"compressed plan is corrupt", func(e *launcherEnv) {
			e.write(filepath.Join(e.root, "usr/local/sbin/hardbake-firstboot"), good, 0o755)
			e.planArg = "gz:" + base64.StdEncoding.EncodeToString([]byte("not gzip"))
		}, "seed", agentName, sha(good), "cannot unpack the plan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLauncherEnv(t)
			tc.setup(e)
			src := tc.src
			if tc.kind == "embed" {
				src = filepath.Join(e.tm, "agent.gz")
			}
			code, stdout, stderr := e.run(tc.kind, src, tc.sum)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstdout %q\nstderr %q", code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "hardbake: FAILED step=agent: ") || !strings.Contains(last, tc.want) {
				t.Errorf("console %q, want a FAILED line with %q (stderr %q)", stdout, tc.want, stderr)
			}
			if tc.name == "state directory unwritable" {
				if !strings.Contains(stderr, "hardbake: cannot write "+e.root+"/var/lib/hardbake/report.json") {
					t.Errorf("stderr %q", stderr)
				}
				return
			}
			data, err := os.ReadFile(filepath.Join(e.root, plan.ReportPath))
			if err != nil {
				t.Fatalf("no report: %v", err)
			}
			var rep plan.Report
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rep); err != nil || dec.More() {
				t.Fatalf("report %s: %v", data, err)
			}
			if rep.Result != plan.ResultFailed || rep.Stage != "early" || len(rep.Steps) != 1 || rep.Steps[0].Name != "agent" ||
				rep.Steps[0].Status != plan.StatusFailed || !strings.Contains(rep.Steps[0].Error, tc.want) || len(rep.PlanDigest) != 64 {
				t.Errorf("report %+v", rep)
			}
			if fi, err := os.Stat(filepath.Join(e.root, plan.ReportPath)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("report mode %v %v", fi.Mode(), err)
			}
			// Nothing installed (unless it ran), nothing left behind.
			var files []string
			filepath.Walk(e.root, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					files = append(files, strings.TrimPrefix(p, e.root))
				}
				return nil
			})
			want := []string{plan.ReportPath}
			switch {
			case strings.HasPrefix(tc.want, "the agent did not run"): // it was pinned, installed and started
				want = []string{plan.AgentPath, plan.PlanPath, plan.ReportPath}
			case e.planArg != "": // installed on an earlier boot; no half-written plan
				want = []string{plan.AgentPath, plan.ReportPath}
			}
			if !slices.Equal(files, want) {
				t.Errorf("files under root %q, want %q", files, want)
			}
			if left, _ := os.ReadDir(e.tm); len(left) > 0 && tc.kind != "embed" {
				t.Errorf("left in TMPDIR: %v", left)
			}
		})
	}
}

// The paths that do run the agent: from the seed, from the embedded copy,
// and already installed; the agent's exit code passes through, and a
// report the agent wrote itself is not overwritten.
func TestLauncherRunsAgent(t *testing.T) {
	testtool.Require(t, "sh")
	for _, tc := range []struct {
		name, kind string
		agentCode  string
		setup      func(e *launcherEnv, agent []byte)
	}{
		{"seed", "seed", "0", func(e *launcherEnv, agent []byte) {
			e.write(filepath.Join(e.seed, ".present"), nil, 0o644)
			e.write(filepath.Join(e.seed, ".mountable"), nil, 0o644)
			e.write(filepath.Join(e.seed, agentName), agent, 0o644)
		}},
		{"embed", "embed", "0", func(e *launcherEnv, agent []byte) {
			e.write(filepath.Join(e.tm, "agent.gz"), gz(e.t, agent), 0o644)
		}},
		{"installed on an earlier boot", "seed", "0", func(e *launcherEnv, agent []byte) {
			e.write(filepath.Join(e.root, "usr/local/sbin/hardbake-firstboot"), agent, 0o755)
		}},
		{"the agent refuses the plan", "seed", "2", func(e *launcherEnv, agent []byte) {
			e.write(filepath.Join(e.root, "usr/local/sbin/hardbake-firstboot"), agent, 0o755)
		}},
		{"compressed plan (render's gz: form)", "seed", "0", func(e *launcherEnv, agent []byte) {
			e.write(filepath.Join(e.root, "usr/local/sbin/hardbake-firstboot"), agent, 0o755)
			e.planArg = "gz:" + base64.StdEncoding.EncodeToString(gz(e.t, []byte(launcherPlan)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLauncherEnv(t)
			agent := fakeAgent(tc.agentCode)
			tc.setup(e, agent)
			src := agentName
			if tc.kind == "embed" {
				src = filepath.Join(e.tm, "agent.gz")
			}
			code, stdout, stderr := e.run(tc.kind, src, sha(agent))
			if want := map[string]int{"0": 0, "2": 2}[tc.agentCode]; code != want || strings.Contains(stdout, "FAILED") {
				t.Fatalf("exit %d want %d\nstdout %q\nstderr %q", code, want, stdout, stderr)
			}
			installed, err := os.ReadFile(filepath.Join(e.root, "usr/local/sbin/hardbake-firstboot"))
			if err != nil || !bytes.Equal(installed, agent) {
				t.Fatalf("agent not installed: %v", err)
			}
			args, _ := os.ReadFile(filepath.Join(e.root, "agent-args"))
			if !strings.HasPrefix(string(args), "apply --stage early --plan "+e.root+plan.PlanPath+" --plan-sha256 ") {
				t.Errorf("agent ran with %q", args)
			}
			if p, _ := os.ReadFile(filepath.Join(e.root, plan.PlanPath)); string(p) != launcherPlan {
				t.Errorf("plan.json %q", p)
			}
			rep, _ := os.ReadFile(filepath.Join(e.root, plan.ReportPath))
			if tc.agentCode == "2" && !strings.Contains(string(rep), "from the agent") {
				t.Errorf("the launcher replaced the agent's own report: %q", rep)
			}
			if left, _ := filepath.Glob(filepath.Join(e.root, "usr/local/sbin/*.??????")); len(left) > 0 {
				t.Errorf("temp files left: %q", left)
			}
		})
	}
}
