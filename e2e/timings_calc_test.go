package e2e

// The timing arithmetic of the suite: pure functions of the console lines,
// the guest journal and the agent's report. Untagged, so 'go test ./e2e'
// checks it without booting anything.

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"hardbake.dev/hardbake/plan"
)

// consoleLine is one line of a guest's serial console and when it arrived.
type consoleLine struct {
	At   time.Time
	Text string
}

// cloudFinishRe is cloud-init's last console line of a boot.
var cloudFinishRe = regexp.MustCompile(`Cloud-init v\. \S+ finished`)

// timings are seconds since QEMU started, except the windows.
type timings struct {
	// KernelUp: QEMU start to the kernel's clock zero (firmware, kernel
	// load), from the console lines' kernel timestamps and arrival times.
	KernelUp float64 `json:"kernel_up_s"`
	// FirstListener: sshd (or ssh.socket) first accepted connections.
	FirstListener     float64 `json:"first_listener_s"`
	FirstListenerWhat string  `json:"first_listener"`
	// SSHHardened: sshd hardened on the new port.
	SSHHardened float64 `json:"ssh_hardened_s"`
	// FirewallUp: default-deny ruleset loaded.
	FirewallUp float64 `json:"firewall_up_s"`
	// SSHAndFirewall: both of the above.
	SSHAndFirewall float64 `json:"ssh_and_firewall_s"`
	// Fail2banActive: the fail2ban daemon that the proof below checked
	// started: the last "Started fail2ban.service" before the agent's
	// fail2ban step (or the reference's "fail2ban active" mark). hardbake
	// writes jail.local before the package exists, so its daemon watches the
	// new port from the package's own start; the reference's from its
	// runcmd restart.
	Fail2banActive float64 `json:"fail2ban_active_s"`
	// FullyHardened: everything verified (the agent's last late step, or
	// the reference's marker after its fail2ban answered).
	FullyHardened float64 `json:"fully_hardened_s"`
	// CloudInitDone: cloud-init's "finished" line on the console.
	CloudInitDone float64 `json:"cloud_init_done_s"`
	// UnhardenedSSH: how long sshd accepted connections with the image's
	// configuration (port 22).
	UnhardenedSSH float64 `json:"unhardened_ssh_window_s"`
	// Exposure: how long anything accepted connections under the
	// unhardened SSH configuration or before the firewall was loaded.
	Exposure float64  `json:"exposure_window_s"`
	Notes    []string `json:"notes,omitempty"`
}

var (
	journalLineRe = regexp.MustCompile(`^\[\s*(\d+\.\d+)\] \S+ ([^:\[\s]+)(?:\[\d+\])?: (.*)$`)
	sshdListenRe  = regexp.MustCompile(`^Server listening on (\S+) port (\d+)`)
	socketListen  = regexp.MustCompile(`^Listening on (?:ssh\.socket|.*OpenBSD Secure Shell server socket)`)
	consoleTSRe   = regexp.MustCompile(`^\[\s*(\d+\.\d+)\] `)
)

type journalEvent struct {
	T     float64
	Ident string
	Msg   string
}

func parseJournal(journal string) []journalEvent {
	var evs []journalEvent
	for _, l := range strings.Split(journal, "\n") {
		m := journalLineRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		t, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		evs = append(evs, journalEvent{T: t, Ident: m[2], Msg: m[3]})
	}
	return evs
}

// kernelOffset maps guest monotonic time to seconds since QEMU start: the
// smallest (arrival - kernel timestamp) over the console's kernel lines.
func kernelOffset(start time.Time, lines []consoleLine) float64 {
	best := math.Inf(1)
	for _, l := range lines {
		m := consoleTSRe.FindStringSubmatch(l.Text)
		if m == nil {
			continue
		}
		ts, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		if d := l.At.Sub(start).Seconds() - ts; d < best {
			best = d
		}
	}
	if math.IsInf(best, 1) {
		return math.NaN()
	}
	return best
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// lastAtOrBefore is the latest of ts not after limit, or -1 (none, or no
// limit).
func lastAtOrBefore(ts []float64, limit float64) float64 {
	last := -1.0
	for _, t := range ts {
		if limit >= 0 && t <= limit && t > last {
			last = t
		}
	}
	return last
}

// computeTimings lines up the journal, the agent's report (step uptimes)
// and the console (lines that arrived after QEMU started at start) for one
// boot.
func computeTimings(start time.Time, lines []consoleLine, journal string, rep *plan.Report, newPort int, reference bool) *timings {
	tm := &timings{}
	off := kernelOffset(start, lines)
	if math.IsNaN(off) {
		tm.Notes = append(tm.Notes, "no kernel timestamps on the console")
		off = 0
	}
	tm.KernelUp = round1(off)
	at := func(mono float64) float64 {
		if mono < 0 {
			return -1
		}
		return round1(off + mono)
	}
	evs := parseJournal(journal)
	first, firstPort := -1.0, 0
	sshdNewPort := -1.0
	socketListens := []float64{}
	marks := map[string]float64{}
	var f2bStarts []float64
	for _, e := range evs {
		switch {
		case e.Ident == "systemd" && strings.HasPrefix(e.Msg, "Started fail2ban.service"):
			f2bStarts = append(f2bStarts, e.T)
		case strings.HasPrefix(e.Ident, "sshd") && sshdListenRe.MatchString(e.Msg):
			p, _ := strconv.Atoi(sshdListenRe.FindStringSubmatch(e.Msg)[2])
			if first < 0 {
				first, firstPort = e.T, p
				tm.FirstListenerWhat = fmt.Sprintf("sshd on port %d", p)
			}
			if p == newPort && sshdNewPort < 0 {
				sshdNewPort = e.T
			}
		case e.Ident == "systemd" && socketListen.MatchString(e.Msg):
			socketListens = append(socketListens, e.T)
			if first < 0 {
				first, firstPort = e.T, 22
				tm.FirstListenerWhat = "ssh.socket (port 22)"
			}
		case e.Ident == "e2e-reference":
			for _, k := range []string{"ssh moved", "firewall loaded", "fail2ban active"} {
				if strings.HasPrefix(e.Msg, k) {
					marks[k] = e.T
				}
			}
		}
	}
	sshAt, fwAt, fullAt, f2bProof := -1.0, -1.0, -1.0, -1.0
	if reference {
		sshAt, fwAt, fullAt = valueOr(marks, "ssh moved"), valueOr(marks, "firewall loaded"), valueOr(marks, "fail2ban active")
		f2bProof = fullAt
		if sshdNewPort >= 0 && (sshAt < 0 || sshdNewPort < sshAt) {
			sshAt = sshdNewPort // the drop-in was in place before sshd started
		}
	} else if rep != nil {
		for _, s := range rep.Steps {
			switch {
			case s.Stage == "early" && s.Name == "ssh" && (s.Status == plan.StatusApplied || s.Status == plan.StatusUnchanged):
				sshAt = s.Uptime
			case s.Name == "firewall" && s.Status == plan.StatusApplied && fwAt < 0:
				fwAt = s.Uptime
			}
			if s.Stage == "late" && s.Uptime > fullAt {
				fullAt = s.Uptime
			}
			if s.Stage == "late" && s.Name == "fail2ban" && (s.Status == plan.StatusApplied || s.Status == plan.StatusUnchanged) {
				f2bProof = s.Uptime
			}
		}
	}
	if first >= 0 {
		tm.FirstListener = at(first)
	} else {
		tm.FirstListener = -1
		tm.Notes = append(tm.Notes, "no SSH listener found in the journal")
	}
	tm.SSHHardened, tm.FirewallUp, tm.FullyHardened = at(sshAt), at(fwAt), at(fullAt)
	tm.Fail2banActive = at(lastAtOrBefore(f2bStarts, f2bProof))
	if sshAt >= 0 && fwAt >= 0 {
		tm.SSHAndFirewall = at(math.Max(sshAt, fwAt))
	} else {
		tm.SSHAndFirewall = -1
	}
	// Unhardened SSH: the first listener was on 22 and stayed until the
	// hardening.
	if first >= 0 && firstPort != newPort && sshAt >= 0 && sshAt > first {
		tm.UnhardenedSSH = round1(sshAt - first)
	}
	if first >= 0 {
		end := math.Max(sshAt, fwAt)
		switch {
		case sshAt < 0 || fwAt < 0:
			tm.Exposure = -1
			tm.Notes = append(tm.Notes, "hardening never completed: exposure unbounded")
		case end > first:
			tm.Exposure = round1(end - first)
		}
	}
	for _, l := range lines {
		if cloudFinishRe.MatchString(l.Text) {
			tm.CloudInitDone = round1(l.At.Sub(start).Seconds())
			break
		}
	}
	return tm
}

func valueOr(m map[string]float64, k string) float64 {
	if v, ok := m[k]; ok {
		return v
	}
	return -1
}

func fmtSec(f float64) string {
	if f < 0 {
		return "—"
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}
