package main

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated files under docs/")

// TestGeneratedDocs keeps the committed profile reference and JSON Schema
// identical to what `hardbake schema` generates from the Go types.
func TestGeneratedDocs(t *testing.T) {
	for _, c := range []struct{ file, format string }{
		{"../../docs/profile-reference.md", "markdown"},
		{"../../docs/profile.schema.json", "json"},
	} {
		var out, errOut bytes.Buffer
		if code := run([]string{"schema", "--format", c.format}, nil, &out, &errOut); code != 0 {
			t.Fatalf("schema --format %s: exit %d: %s", c.format, code, errOut.String())
		}
		if *update {
			if err := os.WriteFile(c.file, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatalf("%v (run go test ./cmd/hardbake -run TestGeneratedDocs -update)", err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("%s is stale: run go test ./cmd/hardbake -run TestGeneratedDocs -update", c.file)
		}
	}
}
