package verify

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// banTest fails logins until fail2ban bans this client, then checks the
// ban is lifted. A ban also locks the admin out (same source address), so
// the unban is scheduled inside before the test, as a transient systemd
// unit that waits until fail2ban lists this client, keeps the ban 20 s,
// then runs `fail2ban-client unban ADDRESS` (this client only: real
// attackers stay banned). The unit gives up after 5 minutes.
func (r *runner) banTest() {
	banName := "fail2ban bans after failed logins"
	if r.e.MaxRetry > 0 {
		banName = fmt.Sprintf("fail2ban bans after %d failed logins", r.e.MaxRetry)
	}
	unbanName := "fail2ban ban lifted, key login works again"
	skipBoth := func(format string, args ...any) {
		r.add(skip(IDBan, banName, format, args...))
		r.add(skip(IDUnban, unbanName, format, args...))
	}
	switch {
	case !r.e.Fail2ban:
		skipBoth("the profile installs no fail2ban")
		return
	case !r.loggedIn():
		skipBoth("needs the key login (to schedule the unban inside), which failed")
		return
	case !r.clientIP.IsValid():
		skipBoth("the machine did not say this client's address ($SSH_CONNECTION)")
		return
	}
	addr, _ := r.sshAddr()
	if r.o.KeepBan {
		r.sess.Close()
		r.sess = &Session{HostKey: r.sess.HostKey, Offer: r.sess.Offer, Banner: r.sess.Banner}
		r.failLogins(addr, banName, "")
		return
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	unit := "hardbake-verify-unban-" + hex.EncodeToString(rnd[:])
	ip := r.clientIP.String() // a parsed address: safe inside the shell script
	script := fmt.Sprintf("for i in $(seq 1 150); do if fail2ban-client status sshd | grep -qwF %s; then sleep 20; fail2ban-client unban %s; exit 0; fi; sleep 2; done; exit 1", ip, ip)
	if _, err := Exec(r.ctx, r.sess.Client, fmt.Sprintf("sudo -n systemd-run --quiet --collect --unit %s /bin/sh -c '%s'", unit, script), r.t.timeout()); err != nil {
		skipBoth("could not schedule the unban inside: %v", err)
		return
	}
	r.progress("unban of %s scheduled inside (unit %s); failing logins on %s", ip, unit, addr)
	r.sess.Close()
	r.sess = &Session{HostKey: r.sess.HostKey, Offer: r.sess.Offer, Banner: r.sess.Banner}

	if !r.failLogins(addr, banName, unit) {
		return
	}

	wait := r.o.BanWait
	if wait <= 0 {
		wait = 3 * time.Minute
	}
	bannedAt := time.Now()
	var lastErr error
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && r.ctx.Err() == nil {
		s, err := ConnectKey(r.ctx, addr, r.t.User, r.t.Signer, r.t.timeout())
		if err == nil {
			r.sess = s
			r.add(pass(IDUnban, unbanName, "lifted by fail2ban-client unban %s (unit %s) after %s; key login works", ip, unit, time.Since(bannedAt).Round(time.Second)))
			return
		}
		lastErr = err
		sleepCtx(r.ctx, 5*time.Second)
	}
	r.add(fail(IDUnban, unbanName, "still no key login %s after the ban (unit %s should have lifted it): %v", wait, unit, lastErr))
}

// failLogins logs in as an unknown user until fail2ban bans this client
// (no SSH banner any more), within BanWait; it records the ban check and
// reports whether the ban came. unit names the scheduled unban, if any.
func (r *runner) failLogins(addr, banName, unit string) bool {
	wait := r.o.BanWait
	if wait <= 0 {
		wait = 3 * time.Minute
	}
	intruder, _, err := NewKey("")
	if err != nil {
		r.add(skip(IDBan, banName, "%v", err))
		return false
	}
	maxTries := r.e.MaxRetry + 3
	if r.e.MaxRetry == 0 {
		maxTries = 8
	}
	attempts, banned := 0, false
	start := time.Now()
	for attempts < maxTries && !banned && r.ctx.Err() == nil {
		// A banned port never answers: wait for a handshake no longer
		// than the old suite did, not a whole command timeout.
		s, err := ConnectKey(r.ctx, addr, "hardbake-verify-intruder", intruder, min(r.t.timeout(), 20*time.Second))
		if err == nil {
			s.Close()
			r.add(fail(IDBan, banName, "an unknown user logged in"))
			return false
		}
		if s.Banner == "" && attempts > 0 {
			banned = true
			break
		}
		attempts++
		sleepCtx(r.ctx, 2*time.Second)
	}
	// fail2ban reads the journal asynchronously: give it time to act.
	deadline := time.Now().Add(wait)
	for !banned && time.Now().Before(deadline) && r.ctx.Err() == nil {
		if _, err := Banner(r.ctx, addr, 5*time.Second); err != nil {
			banned = true
			break
		}
		sleepCtx(r.ctx, 3*time.Second)
	}
	if !banned {
		r.add(fail(IDBan, banName, "port %d still answers SSH %s after %d failed logins", r.e.SSHPort, time.Since(start).Round(time.Second), attempts))
		if unit != "" {
			r.add(skip(IDUnban, "fail2ban ban lifted, key login works again", "no ban to lift (unit %s gives up by itself)", unit))
		}
		return false
	}
	r.add(pass(IDBan, banName, "no SSH banner on port %d %s after %d failed logins as an unknown user", r.e.SSHPort, time.Since(start).Round(time.Second), attempts))
	return true
}
