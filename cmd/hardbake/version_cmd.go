package main

import (
	"fmt"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/internal/stamp"
)

// agentArchs are the architectures hardbake builds agents for.
var agentArchs = []string{"amd64", "arm64"}

// runVersion prints the CLI's version and, for each architecture, the
// agent a seed would carry: where it was found, its version (read from the
// binary, which need not run here) and its sha256, the pin the user-data
// carries. A missing agent is shown, not an error: `version` must work on a
// machine with only the CLI.
func runVersion(e *env, args []string) error {
	fs := newFlags(e, "version", "")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("version: unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintln(e.stdout, "hardbake", version)
	for _, arch := range agentArchs {
		a, err := bake.ResolveAgent(bake.AgentRequest{Arch: arch, SearchDirs: bake.DefaultSearchDirs()})
		if err != nil {
			fmt.Fprintf(e.stdout, "agent %s: none (%v)\n", arch, err)
			continue
		}
		v, ok := stamp.Find(a.Binary)
		if !ok {
			v = "unknown"
		}
		fmt.Fprintf(e.stdout, "agent %s: %s version %s sha256 %s\n", arch, a.Path, v, a.SHA256)
	}
	return nil
}
