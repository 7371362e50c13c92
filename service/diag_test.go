package service

import (
	"os"
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
)

// TestDocumentedCodes: docs/hardbaked.md lists every diagnostic code a
// client can receive, config's and the service's own.
func TestDocumentedCodes(t *testing.T) {
	doc, err := os.ReadFile("../docs/hardbaked.md")
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{CodeSyntax, CodeUnknownField, CodeType, CodeTooLarge, CodeNotFound, CodeMismatch,
		CodeInvalidClientOrderID, CodeInvalidProfileRef, CodeInvalidServerID, CodeInvalidVPSName}
	for _, c := range config.Codes() {
		codes = append(codes, string(c))
	}
	for _, c := range codes {
		if !strings.Contains(string(doc), "`"+c+"`") {
			t.Errorf("docs/hardbaked.md does not list the diagnostic code %q", c)
		}
	}
}
