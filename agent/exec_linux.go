package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ExecRunner runs real programs with os/exec. The zero value uses
// cmdTimeout and cmdWaitDelay.
type ExecRunner struct {
	// Timeout bounds each command (cmdTimeout when zero); then its whole
	// process group is killed.
	Timeout time.Duration
	// WaitDelay bounds how long Run waits for the command's output pipes
	// to close after the command itself exited (cmdWaitDelay when zero).
	// A child that leaves a descendant holding stdout (a daemon that did
	// not close its descriptors, `sleep 60 &`) would otherwise block the
	// read, and with it cloud-init, for as long as the descendant lives.
	WaitDelay time.Duration
}

// searchPath is used when PATH is empty or lacks the sbin directories, as it
// may early in boot.
const searchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// LookPath finds an executable in PATH and the standard system directories.
func (ExecRunner) LookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, executable(name)
	}
	pathEnv, _ := syscall.Getenv("PATH")
	for _, dir := range strings.Split(pathEnv+":"+searchPath, ":") {
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
	mode, isDir, err := sysStat(p)
	if err != nil {
		return err
	}
	if isDir || mode&0o111 == 0 {
		return fmt.Errorf("%s: not executable", p)
	}
	return nil
}

// cmdTimeout bounds every command: cloud-init must never hang on the
// agent, and a stuck systemctl must not block the rollback.
const cmdTimeout = 3 * time.Minute

// cmdWaitDelay is how long output may stay open after the command exited
// (see ExecRunner.WaitDelay). Real output is read long before: the command
// wrote it before exiting.
const cmdWaitDelay = 2 * time.Second

// Run runs name with stdin from /dev/null, capturing stdout and stderr, in
// a process group of its own that is killed when the timeout passes.
func (r ExecRunner) Run(name string, args ...string) ([]byte, error) {
	path, err := r.LookPath(name)
	if err != nil {
		return nil, err
	}
	timeout, waitDelay := r.Timeout, r.WaitDelay
	if timeout <= 0 {
		timeout = cmdTimeout
	}
	if waitDelay <= 0 {
		waitDelay = cmdWaitDelay
	}
	cmdline := strings.Join(append([]string{name}, args...), " ")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Args[0] = name
	cmd.Env = []string{"PATH=" + searchPath, "LC_ALL=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	for _, kv := range syscall.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "LC_ALL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole group on timeout: a stuck command's children go too.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return stdout.Bytes(), fmt.Errorf("%s: killed after %v", cmdline, timeout)
	case errors.Is(err, exec.ErrWaitDelay):
		// The command exited 0; a descendant kept its output open. What it
		// wrote before exiting is all there is to read.
		return stdout.Bytes(), nil
	case errors.As(err, &exitErr):
		code := exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return stdout.Bytes(), &ExitError{Cmd: cmdline, Code: code, Stderr: stderr.String()}
	case err != nil:
		return stdout.Bytes(), fmt.Errorf("%s: %w", cmdline, err)
	}
	return stdout.Bytes(), nil
}
