package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// ExecRunner runs real programs with syscall.ForkExec. os/exec would cost the
// static agent about 300 KiB; this needs nothing beyond syscall and os.
type ExecRunner struct{}

// searchPath is used when PATH is empty or lacks the sbin directories, as it
// may early in boot.
const searchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// LookPath finds an executable in PATH and the standard system directories.
func (ExecRunner) LookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, executable(name)
	}
	for _, dir := range strings.Split(os.Getenv("PATH")+":"+searchPath, ":") {
		if dir == "" {
			continue
		}
		p := dir + "/" + name
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH", name)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not executable", p)
	}
	return nil
}

// Run runs name, capturing stdout and stderr; ctx cancellation kills the
// whole process group.
func (r ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := r.LookPath(name)
	if err != nil {
		return nil, err
	}
	cmdline := strings.Join(append([]string{name}, args...), " ")
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%s: pipe: %w", cmdline, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("%s: pipe: %w", cmdline, err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmdline, err)
	}
	env := []string{"PATH=" + searchPath, "LC_ALL=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "LC_ALL=") {
			env = append(env, kv)
		}
	}
	pid, err := syscall.ForkExec(path, append([]string{name}, args...), &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{devnull.Fd(), outW.Fd(), errW.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	devnull.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("%s: start: %w", cmdline, err)
	}

	var stdout, stderr bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(&stdout, outR); outR.Close() }()
	go func() { defer wg.Done(); io.Copy(&stderr, errR); errR.Close() }()

	waited := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			syscall.Kill(-pid, syscall.SIGKILL)
		case <-waited:
		}
	}()
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	close(waited)
	wg.Wait()
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: wait: %w", cmdline, err)
	}
	if ctx.Err() != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w", cmdline, ctx.Err())
	}
	if code := ws.ExitStatus(); code != 0 || ws.Signaled() {
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return stdout.Bytes(), &ExitError{Cmd: cmdline, Code: code, Stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}
