//go:build e2e

package e2e

import (
	"fmt"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// noFirewallToolImage boots without nft and iptables (nftables purged):
// the agent loads the ruleset over netlink in the early stage, and the
// nftables package, installed in the final stage, takes over.
const noFirewallToolImage = "bookworm-nofw"

// noFirewallToolFirstBoot proves the first boot of that image: the early
// stage loaded the firewall over netlink before any SSH listener (exposure
// 0 s, from the guest journal), and the late stage handed it to nft.
func (g *guest) noFirewallToolFirstBoot(rep *plan.Report) {
	early := ""
	for _, l := range g.vm.Lines() {
		if strings.Contains(l.Text, "hardbake: early stage done") {
			early = agentConsoleText(l.Text)
		}
	}
	g.res.check("no firewall tool: the early stage loaded the ruleset over netlink", boolErr(strings.Contains(early, " firewall=netlink") && !strings.Contains(early, "waiting=firewall"), "console: "+early))
	t := g.res.Timings
	g.res.check("no firewall tool: exposure 0 s (SSH never reachable without the firewall)",
		boolErr(t != nil && t.Exposure == 0 && t.FirewallUp >= 0 && t.FirstListener >= 0 && t.FirewallUp <= t.FirstListener,
			fmt.Sprintf("timings %+v", t)))
	if rep != nil {
		var steps []string
		for _, s := range rep.Steps {
			if s.Name == "firewall" {
				steps = append(steps, s.Stage+"="+s.Status)
			}
		}
		want := []string{"early=" + plan.StatusApplied, "late=" + plan.StatusApplied}
		g.res.check("no firewall tool: firewall applied early (netlink) and again late (nft, from the package)",
			boolErr(strings.Join(steps, " ") == strings.Join(want, " ") && rep.Firewall.Backend == "nftables",
				fmt.Sprintf("steps %v, backend %q", steps, rep.Firewall.Backend)))
	}
}

// persistentRulesetScript prints OK when the loaded ruleset is the one
// nftables.service loads from the package's persistent configuration:
// the same file loaded with nft in a fresh network namespace lists the
// same ruleset.
const persistentRulesetScript = `set -e
dpkg-query -W -f='${Status}\n' nftables | grep -qx 'install ok installed'
systemctl is-enabled nftables.service
systemctl is-active nftables.service
sudo -n journalctl -b -u nftables.service -o cat --no-pager | grep -q 'Finished nftables.service'
sudo -n nft list ruleset >/tmp/e2e-loaded.nft
sudo -n unshare --net sh -c 'nft -f /etc/nftables.conf && nft list ruleset' >/tmp/e2e-fromfile.nft
diff -u /tmp/e2e-fromfile.nft /tmp/e2e-loaded.nft
grep -q 'table inet hardbake' /tmp/e2e-loaded.nft
echo OK`

// noFirewallToolAfterReboot proves that after a reboot the ruleset comes
// from the installed package's persistent configuration.
func (g *guest) noFirewallToolAfterReboot() {
	out, err := g.run(persistentRulesetScript)
	if err == nil && !strings.HasSuffix(strings.TrimSpace(out), "OK") {
		err = fmt.Errorf("no OK")
	}
	if err != nil {
		err = fmt.Errorf("%w: %s", err, lastLines(out, 12))
	}
	g.res.check("after reboot: the ruleset is nftables.service's, from the package's /etc/nftables.conf", err)
}
