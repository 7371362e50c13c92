package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"hardbake.dev/hardbake/plan"
)

// Target is the machine under test and how to reach it.
type Target struct {
	// Host is the machine's address (name or IP) for direct checks.
	Host string
	// Addr maps a port of the machine to the address to dial; nil dials
	// Host:port. The QEMU runner maps guest ports to its host forwards and
	// answers false for a port it does not forward.
	Addr func(port int) (string, bool)
	// Forwarded: the ports are QEMU host forwards, where connect() always
	// succeeds; only data coming back proves that something answered.
	Forwarded bool
	User      string
	Signer    ssh.Signer
	// Timeout bounds each network operation (default 15 s).
	Timeout time.Duration
}

func (t Target) addr(port int) (string, bool) {
	if t.Addr != nil {
		return t.Addr(port)
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port)), true
}

func (t Target) timeout() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return 15 * time.Second
}

// Options select the optional checks.
type Options struct {
	// LoginWait retries the first key login this long (a machine still
	// booting); 0 tries once.
	LoginWait time.Duration
	// BanTest: fail logins until fail2ban bans this client, then lift the
	// ban from inside (scheduled over SSH before the test).
	BanTest bool
	// BanWait bounds the wait for the ban and for its lifting (default 3 min).
	BanWait time.Duration
	// KeepBan leaves the ban in place (no unban scheduled, no unban
	// check): for a caller that proves the ban from inside by another
	// channel and then stops the machine, as the e2e suite does.
	KeepBan bool
	// Progress receives one line per step (nil: silent).
	Progress io.Writer
	// Suffix is appended to every check's name (e.g. " (after reboot)").
	Suffix string
	// Only, when set, runs just the checks whose ids start with one of
	// these (e.g. IDFirewall for every firewall probe).
	Only []string
}

// Check ids, stable for scripts and the e2e suite.
const (
	IDBanner      = "ssh-banner"
	IDNoPort22    = "no-ssh-on-22"
	IDAuthMethods = "no-password-auth"
	IDCrypto      = "crypto-audit"
	IDKeyLogin    = "key-login"
	IDSudo        = "sudo"
	IDRootRefused = "root-refused"
	IDHostKey     = "host-key"
	IDReport      = "agent-report"
	IDFail2ban    = "fail2ban-active"
	IDFirewall    = "firewall" // prefix: firewall-open:PORT, firewall-filtered:PORT
	IDBan         = "fail2ban-ban"
	IDUnban       = "fail2ban-unban"
)

// runner carries one run's state.
type runner struct {
	ctx  context.Context
	t    Target
	e    Expect
	o    Options
	rs   Results
	sess *Session
	// loginError is why the key login failed (nil: it worked).
	loginError error
	report     *plan.Report
	reportErr  error
	// clientIP is this client's address as the machine sees it
	// ($SSH_CONNECTION), for source-restricted ports and the unban.
	clientIP netip.Addr
}

func (r *runner) progress(format string, args ...any) {
	if r.o.Progress != nil {
		fmt.Fprintf(r.o.Progress, "verify: "+format+"\n", args...)
	}
}

// want reports whether the check id is selected.
func (r *runner) want(id string) bool {
	if len(r.o.Only) == 0 {
		return true
	}
	for _, p := range r.o.Only {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

func (r *runner) add(res Result) {
	if !r.want(res.ID) {
		return
	}
	res.Name += r.o.Suffix
	r.rs = append(r.rs, res)
	r.progress("%s %s", res.Status, res.Name)
}

// Run runs every check against the target and returns the results in
// order. It opens as few connections before login as it can: fail2ban
// counts each one closed before authentication.
func Run(ctx context.Context, t Target, e Expect, o Options) Results {
	r := &runner{ctx: ctx, t: t, e: e, o: o}
	defer r.sess.Close()
	r.login()
	steps := []struct {
		id  string
		run func()
	}{
		{IDBanner, r.banner}, {IDNoPort22, r.port22}, {IDAuthMethods, r.authMethods},
		{IDCrypto, r.crypto}, {IDKeyLogin, r.keyLogin}, {IDSudo, r.sudo},
		{IDRootRefused, r.rootRefused}, {IDReport, r.readReport}, {IDHostKey, r.hostKey},
		{IDReport, r.agentReport}, {IDFail2ban, r.fail2ban}, {IDFirewall, r.firewall},
	}
	for _, s := range steps {
		// The report feeds the host key check too.
		if r.want(s.id) || (s.id == IDReport && r.want(IDHostKey)) {
			s.run()
		}
	}
	if o.BanTest && (r.want(IDBan) || r.want(IDUnban)) {
		r.banTest()
	}
	return r.rs
}

func (r *runner) sshAddr() (string, bool) { return r.t.addr(r.e.SSHPort) }

// login connects as the admin, retrying within LoginWait.
func (r *runner) login() {
	r.sess = &Session{}
	addr, ok := r.sshAddr()
	if !ok {
		r.loginError = fmt.Errorf("port %d is not forwarded", r.e.SSHPort)
		return
	}
	deadline := time.Now().Add(r.o.LoginWait)
	for attempt := 1; ; attempt++ {
		s, err := Connect(r.ctx, addr, r.t.User, r.t.Signer, r.t.timeout())
		r.sess, r.loginError = s, err
		// An auth failure is an answer: retrying it only feeds fail2ban.
		if err == nil || len(s.Offered) > 0 || IsAuthFailure(err) || time.Now().After(deadline) || r.ctx.Err() != nil {
			break
		}
		if attempt == 1 {
			r.progress("waiting up to %s for SSH on %s: %v", r.o.LoginWait.Round(time.Second), addr, err)
		}
		select {
		case <-r.ctx.Done():
		case <-time.After(3 * time.Second):
		}
	}
	if r.loginError != nil && len(r.sess.Offered) > 0 && r.t.Signer != nil {
		// The probe stopped at an interactive method the server offered:
		// log in again with the key alone.
		prev := r.sess
		s, err := ConnectKey(r.ctx, addr, r.t.User, r.t.Signer, r.t.timeout())
		s.Offered = prev.Offered
		if s.Offer == nil {
			s.Offer, s.Banner = prev.Offer, prev.Banner
		}
		r.sess, r.loginError = s, err
	}
	if r.sess.Client != nil {
		r.learnClientIP()
	}
}

func (r *runner) learnClientIP() {
	out, err := Exec(r.ctx, r.sess.Client, "echo $SSH_CONNECTION", r.t.timeout())
	if err != nil {
		return
	}
	if f := strings.Fields(out); len(f) > 0 {
		if ip, err := netip.ParseAddr(f[0]); err == nil {
			r.clientIP = ip.Unmap()
		}
	}
}

func (r *runner) loggedIn() bool { return r.sess.Client != nil }

func (r *runner) needLogin(id, name string) bool {
	if r.loggedIn() {
		return true
	}
	r.add(skip(id, name, "needs the key login, which failed"))
	return false
}

func (r *runner) banner() {
	name := fmt.Sprintf("SSH banner on port %d", r.e.SSHPort)
	if r.sess.Banner != "" {
		r.add(pass(IDBanner, name, "%s", r.sess.Banner))
		return
	}
	addr, ok := r.sshAddr()
	if !ok {
		r.add(fail(IDBanner, name, "port %d is not forwarded", r.e.SSHPort))
		return
	}
	b, err := Banner(r.ctx, addr, r.t.timeout())
	if err != nil {
		r.add(fail(IDBanner, name, "%v", err))
		return
	}
	r.add(pass(IDBanner, name, "%s", b))
}

// port22 fails when SSH answers on 22, even where it is the port the
// caller said to expect (verify host --port 22): moving SSH off 22 is one
// of the measures, so a machine that has not is not hardened.
func (r *runner) port22() {
	name := "no SSH on port 22"
	addr, ok := r.t.addr(22)
	if !ok {
		r.add(skip(IDNoPort22, name, "port 22 is not forwarded"))
		return
	}
	b, err := Banner(r.ctx, addr, min(r.t.timeout(), 8*time.Second))
	if err == nil {
		r.add(fail(IDNoPort22, name, "port 22 answers: %s", b))
		return
	}
	r.add(pass(IDNoPort22, name, "%v", err))
}

func (r *runner) authMethods() {
	name := "password and keyboard-interactive not offered"
	switch {
	case len(r.sess.Offered) > 0:
		r.add(fail(IDAuthMethods, name, "the server offers %s to %s", strings.Join(r.sess.Offered, " and "), r.t.User))
	case r.loggedIn() || IsAuthFailure(r.loginError):
		r.add(pass(IDAuthMethods, name, "after \"none\" the server listed neither for %s (nothing was sent)", r.t.User))
	default:
		r.add(skip(IDAuthMethods, name, "no SSH handshake: %v", r.loginError))
	}
}

func (r *runner) crypto() {
	name := "crypto: offered algorithms vs policy " + r.e.Policy.Name
	o := r.sess.Offer
	if o == nil {
		addr, ok := r.sshAddr()
		if !ok {
			r.add(skip(IDCrypto, name, "port %d is not forwarded", r.e.SSHPort))
			return
		}
		var err error
		if o, err = FetchOffer(r.ctx, addr, r.t.timeout()); err != nil {
			r.add(fail(IDCrypto, name, "no KEXINIT: %v", err))
			return
		}
	}
	a := Audit(o, r.e.Policy)
	if !a.OK() {
		r.add(fail(IDCrypto, name, "%s", a.Summary()))
		return
	}
	r.add(pass(IDCrypto, name, "%s", a.Summary()))
}

func (r *runner) keyLogin() {
	name := "key login as " + r.t.User
	switch {
	case r.t.Signer == nil:
		r.add(skip(IDKeyLogin, name, "no key given (--identity)"))
	case r.loginError != nil:
		r.add(fail(IDKeyLogin, name, "%v", r.loginError))
	default:
		r.add(pass(IDKeyLogin, name, "logged in with %s %s", r.t.Signer.PublicKey().Type(), ssh.FingerprintSHA256(r.t.Signer.PublicKey())))
	}
}

func (r *runner) sudo() {
	name := "sudo -n true"
	if !r.needLogin(IDSudo, name) {
		return
	}
	if _, err := Exec(r.ctx, r.sess.Client, "sudo -n true", r.t.timeout()); err != nil {
		r.add(fail(IDSudo, name, "%v", err))
		return
	}
	r.add(pass(IDSudo, name, "%s has passwordless sudo", r.t.User))
}

func (r *runner) rootRefused() {
	name := "root login refused"
	if r.t.Signer == nil {
		r.add(skip(IDRootRefused, name, "no key given (--identity)"))
		return
	}
	addr, _ := r.sshAddr()
	// The admin's key: cloud-init also puts it in root's authorized_keys
	// (behind a "log in as the admin" command).
	s, err := ConnectKey(r.ctx, addr, "root", r.t.Signer, r.t.timeout())
	switch {
	case err == nil:
		s.Close()
		r.add(fail(IDRootRefused, name, "root logged in with the admin's key"))
	case IsAuthFailure(err):
		r.add(pass(IDRootRefused, name, "root with the admin's key: %v", shortErr(err)))
	default:
		r.add(fail(IDRootRefused, name, "want an authentication failure, got: %v", err))
	}
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "unable to authenticate"); i >= 0 {
		return s[i:]
	}
	return s
}

func (r *runner) readReport() {
	if !r.loggedIn() {
		r.reportErr = fmt.Errorf("not logged in")
		return
	}
	out, err := Exec(r.ctx, r.sess.Client, "sudo -n cat "+plan.ReportPath, r.t.timeout())
	if err != nil {
		r.reportErr = err
		return
	}
	var rep plan.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		r.reportErr = fmt.Errorf("decode %s: %w", plan.ReportPath, err)
		return
	}
	r.report = &rep
}

// Report returns the agent's report read during the run, if any.
func (r *runner) Report() *plan.Report { return r.report }

func (r *runner) hostKey() {
	name := "host key matches"
	key := r.sess.HostKey
	if key == nil {
		r.add(skip(IDHostKey, name, "no SSH handshake"))
		return
	}
	fp := ssh.FingerprintSHA256(key)
	var known []string
	from := []string{}
	if len(r.e.KnownHostKeys) > 0 {
		known = append(known, r.e.KnownHostKeys...)
		from = append(from, "the given fingerprints")
	}
	var reportTypes []string
	if r.report != nil {
		for _, hk := range r.report.HostKeys {
			known = append(known, hk.Fingerprint)
			reportTypes = append(reportTypes, hk.Type)
		}
		from = append(from, "the agent's report")
	}
	if len(known) == 0 {
		r.add(skip(IDHostKey, name, "server key %s %s; nothing to compare with (no report, no --known-fingerprint)", key.Type(), fp))
		return
	}
	name += " " + strings.Join(from, " and ")
	if !slices.Contains(known, fp) {
		r.add(fail(IDHostKey, name, "server proved %s %s; expected one of %v", key.Type(), fp, known))
		return
	}
	// The report must list exactly the key types sshd serves: a key on
	// disk that sshd does not serve (or the reverse) means the crypto
	// policy and cloud-init's key generation disagree.
	if r.report != nil && r.sess.Offer != nil {
		served := servedKeyTypes(r.sess.Offer.HostKey)
		slices.Sort(reportTypes)
		if !slices.Equal(served, slices.Compact(reportTypes)) {
			r.add(fail(IDHostKey, name, "server proved %s; it serves key types %v but the report lists %v", fp, served, reportTypes))
			return
		}
	}
	r.add(pass(IDHostKey, name, "%s %s", key.Type(), fp))
}

// servedKeyTypes maps host key algorithms to the key types behind them.
func servedKeyTypes(algs []string) []string {
	var types []string
	for _, a := range algs {
		if strings.Contains(a, "-cert-") {
			continue
		}
		switch {
		case a == "rsa-sha2-256" || a == "rsa-sha2-512":
			a = "ssh-rsa"
		}
		types = append(types, a)
	}
	slices.Sort(types)
	return slices.Compact(types)
}

func (r *runner) agentReport() {
	name := "agent report says hardened"
	if !r.e.Report {
		r.add(skip(IDReport, name, "not expected (no profile, order or seed)"))
		return
	}
	if !r.needLogin(IDReport, name) {
		return
	}
	if r.report == nil {
		r.add(fail(IDReport, name, "no agent report: %v", r.reportErr))
		return
	}
	if r.report.Result != plan.ResultHardened {
		var bad []string
		for _, s := range r.report.Steps {
			if s.Status == plan.StatusFailed || s.Status == plan.StatusRolledBack || s.Status == plan.StatusWaiting {
				bad = append(bad, fmt.Sprintf("%s/%s %s: %s", s.Stage, s.Name, s.Status, s.Error))
			}
		}
		r.add(fail(IDReport, name, "result %s (stage %s): %s", r.report.Result, r.report.Stage, strings.Join(bad, "; ")))
		return
	}
	r.add(pass(IDReport, name, "profile %s, instance %s, stage %s, ssh port %d", r.report.Profile, r.report.InstanceID, r.report.Stage, r.report.SSH.Port))
}

func (r *runner) fail2ban() {
	name := "fail2ban jail sshd active"
	if !r.e.Fail2ban {
		r.add(skip(IDFail2ban, name, "the profile installs no fail2ban"))
		return
	}
	if !r.needLogin(IDFail2ban, name) {
		return
	}
	out, err := Exec(r.ctx, r.sess.Client, "sudo -n fail2ban-client status sshd", r.t.timeout())
	if err != nil {
		r.add(fail(IDFail2ban, name, "%v", err))
		return
	}
	r.add(pass(IDFail2ban, name, "%s", oneLine(out)))
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
