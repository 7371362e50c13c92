//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

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
