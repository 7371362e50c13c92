package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"hardbake.dev/hardbake/internal/testtool"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"hardbake": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		"mkagent":  mkagentMain,
	})
}

// TestScripts runs the CLI end to end as a user would, from the scripts in
// testdata/script (rogpeppe/go-internal/testscript).
func TestScripts(t *testing.T) {
	requireScriptTools(t, "testdata/script")
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}

// execCondRe finds the scripts' [exec:TOOL] guards.
var execCondRe = regexp.MustCompile(`\[!?exec:([A-Za-z0-9_.+-]+)\]`)

// requireScriptTools makes every tool a script guards with [exec:TOOL]
// required under HARDBAKE_REQUIRE_TOOLS=1: in CI a guard that silently
// skips its lines proves nothing.
func requireScriptTools(t *testing.T, dir string) {
	t.Helper()
	if os.Getenv("HARDBAKE_REQUIRE_TOOLS") != "1" {
		return
	}
	scripts, err := filepath.Glob(filepath.Join(dir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	var tools []string
	for _, s := range scripts {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range execCondRe.FindAllStringSubmatch(string(data), -1) {
			tools = append(tools, m[1])
		}
	}
	slices.Sort(tools)
	for _, tool := range slices.Compact(tools) {
		testtool.Require(t, tool)
	}
}
