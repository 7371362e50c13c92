package verify

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// listenerPy listens on the ports given as arguments (IPv4 and IPv6) and
// greets every connection with a fixed line, so "answered" means data
// came back, which QEMU's forwards cannot fake. It prints "taken PORT" for
// a port something else already holds, "ready" when listening, and exits
// after its sleep even if the SSH session is lost.
const listenerPy = `import socket, sys, threading, time
def serve(s):
    while True:
        c, _ = s.accept()
        try:
            c.sendall(b"hardbake-verify\n")
            c.close()
        except OSError:
            pass
for p in sys.argv[1:]:
    try:
        try:
            s = socket.create_server(("", int(p)), family=socket.AF_INET6, dualstack_ipv6=True)
        except (OSError, ValueError):
            s = socket.create_server(("", int(p)))
    except OSError:
        print("taken", p, flush=True)
        continue
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("ready", flush=True)
time.sleep(100)
`

const greeting = "hardbake-verify"

// firewall starts listeners inside on the declared ports and on a port
// the profile does not allow, then probes them from outside.
func (r *runner) firewall() {
	name := "firewall"
	if !r.e.Firewall {
		r.add(skip(IDFirewall, name, "the profile installs no firewall"))
		return
	}
	type probe struct {
		id, name string
		port     int
		want     bool // must answer from here
		why      string
	}
	var probes []probe
	for _, p := range r.e.Open {
		probes = append(probes, probe{fmt.Sprintf("%s-open:%d", IDFirewall, p.Port), fmt.Sprintf("declared port %d/tcp answers", p.Port), p.Port, true, "allowed from anywhere"})
	}
	for _, rp := range r.e.Restricted {
		if rp.Proto != "tcp" {
			continue
		}
		in := false
		for _, pre := range rp.Sources {
			if r.clientIP.IsValid() && pre.Contains(r.clientIP) {
				in = true
			}
		}
		pr := probe{fmt.Sprintf("%s-restricted:%d", IDFirewall, rp.Port), "", rp.Port, in, ""}
		if in {
			pr.name = fmt.Sprintf("restricted port %d/tcp answers this client", rp.Port)
			pr.why = fmt.Sprintf("this client (%s) is in %v", r.clientIP, rp.Sources)
		} else {
			pr.name = fmt.Sprintf("restricted port %d/tcp filtered for this client", rp.Port)
			pr.why = fmt.Sprintf("this client (%s) is not in %v", r.clientIP, rp.Sources)
		}
		probes = append(probes, pr)
	}
	if r.e.ProbePort != 0 {
		probes = append(probes, probe{fmt.Sprintf("%s-filtered:%d", IDFirewall, r.e.ProbePort), fmt.Sprintf("port %d/tcp (not allowed) filtered", r.e.ProbePort), r.e.ProbePort, false, "not allowed by the profile"})
	}
	if len(probes) == 0 {
		return
	}
	skipAll := func(format string, args ...any) {
		for _, p := range probes {
			r.add(skip(p.id, p.name, format, args...))
		}
	}
	if !r.loggedIn() {
		skipAll("needs the key login (to start listeners inside), which failed")
		return
	}
	var ports []string
	for _, p := range probes {
		ports = append(ports, strconv.Itoa(p.port))
	}
	taken, stop, err := r.startListeners(ports)
	if err != nil {
		skipAll("could not start listeners inside: %v", err)
		return
	}
	defer stop()
	for _, p := range probes {
		addr, ok := r.t.addr(p.port)
		if !ok {
			r.add(skip(p.id, p.name, "port %d is not forwarded", p.port))
			continue
		}
		if taken[p.port] {
			r.probeTaken(p.id, p.name, addr, p.port, p.want)
			continue
		}
		wait := 15 * time.Second
		if !p.want {
			wait = 6 * time.Second // a dropped SYN never answers: wait long enough, no longer
		}
		got, detail := greet(r.ctx, addr, wait)
		switch {
		case got == p.want && got:
			r.add(pass(p.id, p.name, "%s; a listener inside answered (%s)", p.why, detail))
		case got == p.want:
			r.add(pass(p.id, p.name, "%s; a listener inside, no answer from outside (%s)", p.why, detail))
		case p.want:
			r.add(fail(p.id, p.name, "%s, but a listener inside gets no connection from here (%s)", p.why, detail))
		default:
			r.add(fail(p.id, p.name, "%s, but a listener inside answered from here", p.why))
		}
	}
}

// probeTaken judges a port some service already listens on: connect()
// proves it open on a direct target; behind QEMU's forwards it proves
// nothing.
func (r *runner) probeTaken(id, name, addr string, port int, want bool) {
	if r.t.Forwarded {
		r.add(skip(id, name, "port %d is already in use inside; behind QEMU's forwards connect() proves nothing", port))
		return
	}
	conn, err := net.DialTimeout("tcp", addr, 6*time.Second)
	if err == nil {
		conn.Close()
	}
	switch {
	case err == nil && want:
		r.add(pass(id, name, "a service inside already listens; connect() from here succeeded"))
	case err == nil:
		r.add(fail(id, name, "a service inside listens and connect() from here succeeded"))
	case want:
		r.add(fail(id, name, "a service inside listens but connect() from here failed: %v", err))
	default:
		r.add(pass(id, name, "a service inside listens; connect() from here failed: %v", err))
	}
}

// startListeners runs listenerPy over SSH; stop ends it.
func (r *runner) startListeners(ports []string) (map[int]bool, func(), error) {
	s, err := r.sess.Client.NewSession()
	if err != nil {
		return nil, nil, fmt.Errorf("ssh session: %w", err)
	}
	s.Stdin = strings.NewReader(listenerPy)
	out, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	var stderr strings.Builder
	s.Stderr = &stderr
	if err := s.Start("exec timeout 120 python3 - " + strings.Join(ports, " ")); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("start listener: %w", err)
	}
	stop := func() {
		_ = s.Signal("TERM")
		s.Close()
	}
	type res struct {
		taken map[int]bool
		err   error
	}
	ch := make(chan res, 1)
	go func() {
		taken := map[int]bool{}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 1 && f[0] == "ready" {
				ch <- res{taken, nil}
				_, _ = io.Copy(io.Discard, out)
				return
			}
			if len(f) == 2 && f[0] == "taken" {
				if n, err := strconv.Atoi(f[1]); err == nil {
					taken[n] = true
				}
			}
		}
		ch <- res{nil, fmt.Errorf("listener exited before it was ready: %s", strings.TrimSpace(stderr.String()))}
	}()
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case got := <-ch:
		if got.err != nil {
			stop()
			return nil, nil, got.err
		}
		return got.taken, stop, nil
	case <-t.C:
		stop()
		return nil, nil, fmt.Errorf("listener not ready within 60s")
	case <-r.ctx.Done():
		stop()
		return nil, nil, r.ctx.Err()
	}
}

// greet connects and waits for the listener's greeting.
func greet(ctx context.Context, addr string, wait time.Duration) (bool, string) {
	d := net.Dialer{Timeout: wait}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, err.Error()
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if strings.HasPrefix(line, greeting) {
		return true, "greeting received"
	}
	if err != nil {
		return false, fmt.Sprintf("connected, no greeting: %v", err)
	}
	return false, fmt.Sprintf("unexpected answer %q", line)
}
