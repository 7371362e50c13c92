//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"hardbake.dev/hardbake/plan"
)

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
func kernelOffset(v *vm) float64 {
	best := math.Inf(1)
	for _, l := range v.Lines() {
		m := consoleTSRe.FindStringSubmatch(l.Text)
		if m == nil {
			continue
		}
		ts, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		if d := l.At.Sub(v.Start).Seconds() - ts; d < best {
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
// and the console for one boot.
func computeTimings(v *vm, journal string, rep *plan.Report, newPort int, reference bool) *timings {
	tm := &timings{}
	off := kernelOffset(v)
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
	for _, l := range v.Lines() {
		if cloudFinishRe.MatchString(l.Text) {
			tm.CloudInitDone = round1(l.At.Sub(v.Start).Seconds())
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

// writeResults writes results.json in the run directory and, for a run of
// every scenario, docs/bench/e2e.md with the timings table.
func (s *suite) writeResults(wall, images time.Duration) error {
	s.mu.Lock()
	results := append([]*result(nil), s.results...)
	s.mu.Unlock()
	sort.SliceStable(results, func(i, j int) bool { return results[i].Scenario < results[j].Scenario })
	type summary struct {
		Date     string    `json:"date"`
		Host     string    `json:"host"`
		WallS    float64   `json:"wall_s"`
		ImagesS  float64   `json:"images_s"`
		Parallel int       `json:"parallel_guests"`
		Results  []*result `json:"results"`
	}
	sum := summary{
		Date: time.Now().UTC().Format(time.RFC3339), Host: fmt.Sprintf("%s/%s, %d CPUs, QEMU TCG", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()),
		WallS: round1(wall.Seconds()), ImagesS: round1(images.Seconds()), Parallel: cap(s.slots), Results: results,
	}
	js, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.work, "results.json"), js, 0o644); err != nil {
		return fmt.Errorf("write results.json: %w", err)
	}
	md := renderMarkdown(sum.Date, sum.Host, sum.WallS, sum.ImagesS, sum.Parallel, results, js)
	if err := os.WriteFile(filepath.Join(s.work, "e2e.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write e2e.md: %w", err)
	}
	if os.Getenv("HARDBAKE_E2E_ONLY") != "" {
		s.lg.Printf("results: %s (partial run: docs/bench/e2e.md left alone)", s.work)
		return nil
	}
	dst := filepath.Join(s.root, "docs", "bench", "e2e.md")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("create docs/bench: %w", err)
	}
	if err := os.WriteFile(dst, []byte(md), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	s.lg.Printf("results: %s and %s", filepath.Join(s.work, "results.json"), dst)
	return nil
}

func renderMarkdown(date, host string, wall, images float64, parallel int, results []*result, js []byte) string {
	var b strings.Builder
	b.WriteString("# End-to-end suite: QEMU boots and first-boot timings\n\n")
	b.WriteString("Written by `make e2e` (`go test -tags e2e ./e2e/...`); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "Run %s on %s, %d guests at once. Wall time %.0f s (images and mirrors %.0f s, cached when the recipe is unchanged).\n\n", date, host, parallel, wall, images)
	b.WriteString("## Timings\n\n")
	b.WriteString("Seconds since QEMU started. *Kernel up* is the kernel's clock zero; *SSH+firewall* is when sshd is hardened on the new port and the default-deny ruleset is loaded; *fail2ban active* is when the fail2ban daemon the proof checked started (journal; hardbake's starts from the package with the planned jail.local already in place, the reference's from its runcmd restart); *fully hardened* is when all of it was verified: the agent's last late step (fail2ban's jail port, unattended-upgrades), or the reference's mark after its restarted fail2ban answered. *Unhardened SSH* is how long sshd accepted connections with the image's configuration; *exposure* is how long anything accepted connections under the unhardened SSH configuration or without the firewall (guest journal `short-monotonic` timestamps, the agent's step uptimes, and the console's kernel timestamps to align them).\n\n")
	b.WriteString("| scenario | image | kernel up | first listener | SSH hardened | firewall up | SSH+firewall | fail2ban active | fully hardened | cloud-init done | unhardened SSH | exposure |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		t := r.Timings
		if t == nil {
			fmt.Fprintf(&b, "| %s | %s | — | — | — | — | — | — | — | — | — | — |\n", r.Scenario, r.Image)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.Image,
			fmtSec(t.KernelUp), fmtSec(t.FirstListener), t.FirstListenerWhat, fmtSec(t.SSHHardened), fmtSec(t.FirewallUp),
			fmtSec(t.SSHAndFirewall), fmtSec(t.Fail2banActive), fmtSec(t.FullyHardened), fmtSec(t.CloudInitDone), fmtSec(t.UnhardenedSSH), fmtSec(t.Exposure))
	}
	b.WriteString("\n## Checks\n\n")
	for _, r := range results {
		pass, total := 0, len(r.Checks)
		for _, c := range r.Checks {
			if c.Pass {
				pass++
			}
		}
		fmt.Fprintf(&b, "### %s (%s, %s): %d/%d passed, %.0f s\n\n", r.Scenario, r.Image, r.Kind, pass, total, r.Wall)
		if r.Console != "" {
			fmt.Fprintf(&b, "Agent: `%s`\n\n", r.Console)
		}
		for _, c := range r.Checks {
			mark := "pass"
			if !c.Pass {
				mark = "**FAIL**"
			}
			detail := ""
			if c.Detail != "" {
				detail = " — " + strings.ReplaceAll(c.Detail, "\n", " ")
			}
			fmt.Fprintf(&b, "- %s: %s%s\n", mark, c.Name, detail)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Raw results (JSON)\n\n```json\n")
	b.Write(js)
	b.WriteString("\n```\n")
	return b.String()
}
