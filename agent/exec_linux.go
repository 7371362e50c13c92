package agent

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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

// Run runs name, capturing stdout and stderr. The process group is killed
// after cmdTimeout. There is no context.Context: merely boxing one keeps
// time.Time's formatting code (~50 KiB) in the static binary.
func (r ExecRunner) Run(name string, args ...string) ([]byte, error) {
	path, err := r.LookPath(name)
	if err != nil {
		return nil, err
	}
	cmdline := strings.Join(append([]string{name}, args...), " ")
	var outP, errP [2]int
	if err := syscall.Pipe2(outP[:], syscall.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("%s: pipe: %w", cmdline, err)
	}
	if err := syscall.Pipe2(errP[:], syscall.O_CLOEXEC); err != nil {
		syscall.Close(outP[0])
		syscall.Close(outP[1])
		return nil, fmt.Errorf("%s: pipe: %w", cmdline, err)
	}
	devnull, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: /dev/null: %w", cmdline, err)
	}
	env := []string{"PATH=" + searchPath, "LC_ALL=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	for _, kv := range syscall.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "LC_ALL=") {
			env = append(env, kv)
		}
	}
	pid, err := syscall.ForkExec(path, append([]string{name}, args...), &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{uintptr(devnull), uintptr(outP[1]), uintptr(errP[1])},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	syscall.Close(devnull)
	syscall.Close(outP[1])
	syscall.Close(errP[1])
	if err != nil {
		syscall.Close(outP[0])
		syscall.Close(errP[0])
		return nil, fmt.Errorf("%s: start: %w", cmdline, err)
	}

	var stdout, stderr []byte
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); stdout = drain(outP[0]) }()
	go func() { defer wg.Done(); stderr = drain(errP[0]) }()

	var killed atomic.Bool
	kill := func() { killed.Store(true); syscall.Kill(-pid, syscall.SIGKILL) }
	timer := time.AfterFunc(cmdTimeout, kill)
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	timer.Stop()
	wg.Wait()
	switch {
	case err != nil:
		return stdout, fmt.Errorf("%s: wait: %w", cmdline, err)
	case killed.Load():
		return stdout, fmt.Errorf("%s: killed after %v", cmdline, cmdTimeout)
	case ws.Signaled():
		return stdout, &ExitError{Cmd: cmdline, Code: 128 + int(ws.Signal()), Stderr: string(stderr)}
	case ws.ExitStatus() != 0:
		return stdout, &ExitError{Cmd: cmdline, Code: ws.ExitStatus(), Stderr: string(stderr)}
	}
	return stdout, nil
}

// drain reads fd to EOF and closes it.
func drain(fd int) []byte {
	defer syscall.Close(fd)
	var out []byte
	buf := make([]byte, 16*1024)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}
