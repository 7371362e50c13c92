// Command hardbake-firstboot is the first-boot agent: cloud-init runs it to
// apply a hardbake plan, prove it and report. See package agent for the
// stages and exit codes.
//
//	hardbake-firstboot apply --stage early|late [--plan FILE] [--plan-sha256 HEX]
//	hardbake-firstboot check [--plan FILE]
//	hardbake-firstboot send-report
//	hardbake-firstboot version
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"hardbake.dev/hardbake/agent"
	"hardbake.dev/hardbake/internal/stamp"
	"hardbake.dev/hardbake/plan"
)

// version is the agent's version stamp, set at build time with
// -X 'main.version=[hardbake-version:VERSION]' (internal/stamp), so that
// `hardbake version` can read it from a binary it cannot run.
// Left empty, it reads as "dev".
var version string

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) int {
	fmt.Fprintln(w, "usage: hardbake-firstboot apply --stage early|late [--plan FILE] [--plan-sha256 HEX]")
	fmt.Fprintln(w, "       hardbake-firstboot check [--plan FILE]")
	fmt.Fprintln(w, "       hardbake-firstboot send-report")
	fmt.Fprintln(w, "       hardbake-firstboot version")
	return agent.ExitUsage
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usage(stderr)
	}
	cmd := args[0]
	if cmd == "version" {
		fmt.Fprintln(stdout, "hardbake-firstboot", stamp.Version(version))
		return agent.ExitOK
	}
	if cmd == "send-report" {
		if len(args) > 1 {
			return usage(stderr)
		}
		// Started detached after the late stage and check (see
		// agent.Deliver); it retries with a bounded backoff.
		a := &agent.Agent{Root: agent.Root{Dir: "/"}, Runner: agent.ExecRunner{}, Sleep: time.Sleep, Out: stdout, Err: stderr, Version: version}
		if _, err := a.Deliver(agent.DefaultBackoff()); err != nil {
			fmt.Fprintf(stderr, "hardbake-firstboot send-report: %v\n", err)
			return agent.ExitFailed
		}
		return agent.ExitOK
	}
	if cmd != "apply" && cmd != "check" {
		return usage(stderr)
	}
	// There is no --root: the agent's commands (systemctl, sshd, nft) and
	// its banner dial act on the running machine, so a file root elsewhere
	// would check one system's files against another system's services.
	// Tests inject agent.Root and agent.Runner instead.
	planPath, stage, digest := plan.PlanPath, "", ""
	vals := map[string]*string{"plan": &planPath}
	if cmd == "apply" {
		vals["stage"], vals["plan-sha256"] = &stage, &digest
	}
	if err := parseFlags(args[1:], vals); err != nil {
		fmt.Fprintf(stderr, "hardbake-firstboot %s: %v\n", cmd, err)
		return usage(stderr)
	}
	opts := agent.Options{Stage: agent.StageCheck, PlanPath: planPath}
	if cmd == "apply" {
		if stage != agent.StageEarly && stage != agent.StageLate {
			fmt.Fprintln(stderr, "hardbake-firstboot: --stage must be early or late")
			return agent.ExitUsage
		}
		opts.Stage, opts.WantDigest = stage, digest
	}
	a := &agent.Agent{
		Root:    agent.Root{Dir: "/"},
		Runner:  agent.ExecRunner{},
		Uptime:  agent.ProcUptime,
		Banner:  agent.DialBanner,
		Sleep:   time.Sleep,
		Out:     stdout,
		Err:     stderr,
		Version: stamp.Version(version),
		Netlink: agent.Netlink{},
	}
	// Each command (ExecRunner) and each poll loop is bounded inside the agent.
	// A run that cannot start still leaves a report and prints the FAILED
	// line (Agent.Run does both); the error repeats on stderr.
	code, err := a.Run(opts)
	if err != nil {
		fmt.Fprintf(stderr, "hardbake-firstboot: %v\n", err)
	}
	return code
}
