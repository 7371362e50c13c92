// Package agent applies a hardbake plan on the machine it runs on, proves the
// result from inside, rolls back what fails and writes a report.
//
// It is the body of cmd/hardbake-firstboot, which cloud-init runs twice on
// first boot:
//
//   - stage "early" from the first bootcmd entry, before sshd.service starts
//     (cloud-init.service is ordered Before=sshd.service): firewall, sshd
//     drop-in (and ssh.socket override where SSH is socket-activated),
//     sysctl, and the config files of packages that are not installed yet
//     (jail.local, apt periodic settings).
//   - stage "late" from runcmd, after the packages are installed: finishes a
//     firewall that waited for nft/iptables, proves sshd answers an SSH
//     banner on the new port and not on 22, proves the admin can log in and
//     sudo (login shell, authorized key as StrictModes reads it, account
//     state, `sudo -n true` as the admin), then locks root's password;
//     queries fail2ban (restarting it first unless the package started it
//     from the planned jail.local in this boot), checks unattended-upgrades.
//     When the admin cannot log in, root's password stays as it is and the
//     sshd drop-in is rolled back (root and password login as cloud-init
//     left them, SSH on its old port, the firewall following): the result
//     is failed, never a machine nobody can enter.
//
// When the order came from hardbaked (its user-data wrote
// plan.ReportEndpointPath), the report of the late stage and of check is
// queued in plan.OutboxPath and sent home by a detached sender
// (`hardbake-firstboot send-report`, see Deliver and send.go), which
// never holds up boot.
//
// A run that cannot start (plan unreadable, digest mismatch, another
// version, undecodable) changes nothing and still writes a failed report
// and prints "hardbake: FAILED step=plan: …"; the launcher does the same
// with step=agent when the agent itself cannot be fetched or run.
//
// Exit codes of the command (see ExitCode):
//
//	0  everything applied and verified (or nothing to do)
//	1  failed: a step was rolled back or could not be applied
//	2  usage error or bad plan (unreadable, digest mismatch, wrong version)
//	3  partial: SSH and firewall hardened, but a package needed to verify
//	   fail2ban or unattended-upgrades is missing
//
// Every file access goes through Root and every command through Runner, so
// the whole agent runs against a temporary directory and a scripted fake
// machine in tests. The plan and report types, and the one plan decoder,
// are package plan's. The agent uses encoding/json and os/exec (with a
// WaitDelay, so no descendant can hold it) from the standard library; it
// avoids net, the os file API, flag and crypto/sha256 (SHA-256 comes from
// coreutils' sha256sum, host key fingerprints from ssh-keygen, both run
// through Runner) to stay within its size budget (docs/bench/agent.md).
package agent
