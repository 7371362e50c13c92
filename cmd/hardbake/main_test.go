package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"hardbake.dev/hardbake/bake/baketest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"hardbake": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI end to end as a user would, from the scripts in
// testdata/script (rogpeppe/go-internal/testscript).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script", Cmds: map[string]func(*testscript.TestScript, bool, []string){
		"mkagent": cmdMkagent,
	}})
}

// cmdMkagent writes a minimal static ELF executable for an arch, which
// passes bake's agent check: mkagent ARCH FILE.
func cmdMkagent(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mkagent ARCH FILE")
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), baketest.StaticELF(args[0]), 0o755))
}
