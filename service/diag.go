package service

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/config"
)

// Diagnostic is one problem with a request, in the same terms the CLI
// prints (`file:line:column: key.path: message`), as JSON.
type Diagnostic struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	File     string `json:"file,omitempty"`
	Path     string `json:"path,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Message  string `json:"message"`
}

// Diagnostic codes of the request itself. Input problems found by package
// config carry config's code for the check that refused the value (see
// config.Codes); CodeInvalid is only for one that came without a code.
const (
	CodeInvalid      = "invalid"
	CodeSyntax       = "syntax"        // not one well-formed JSON value
	CodeUnknownField = "unknown-field" // a key the API does not know
	CodeType         = "type"          // a value of the wrong JSON type
	CodeTooLarge     = "too-large"
	CodeNotFound     = "not-found" // a reference (profile, agent) to nothing
	CodeMismatch     = "mismatch"  // a value that must equal another (the URL's profile name, the order's instance)

	CodeInvalidClientOrderID = "invalid-client-order-id"
	CodeInvalidProfileRef    = "invalid-profile-ref" // not NAME or NAME@REVISION
	CodeInvalidServerID      = "invalid-server-id"   // an edge target's hetzner_server_id
	CodeInvalidVPSName       = "invalid-vps-name"    // an edge target's ovh_vps
)

// String renders d the way the CLI prints it.
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
		if d.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", d.Line, d.Column)
		}
		b.WriteString(": ")
	}
	if d.Path != "" {
		b.WriteString(d.Path + ": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// diagnosticsOf turns config's input errors into diagnostics; it returns
// nil for any other error, which is then not the client's fault.
// positions, when not nil, moves each diagnostic to where its key path is
// in the request body (see bodyPositions).
func diagnosticsOf(err error, file string, positions map[string]config.Pos) []Diagnostic {
	var ie *config.InputError
	if !errors.As(err, &ie) {
		return nil
	}
	out := make([]Diagnostic, 0, len(ie.Errs))
	for _, fe := range ie.Errs {
		code := string(fe.Code)
		if code == "" {
			code = CodeInvalid
		}
		d := Diagnostic{Code: code, Severity: "error", File: fe.File, Path: fe.Path, Line: fe.Pos.Line, Column: fe.Pos.Col, Message: fe.Reason}
		if positions != nil {
			d.File = file
			p := lookupPos(positions, fe.Path)
			d.Line, d.Column = p.Line, p.Col
		}
		out = append(out, d)
	}
	return out
}

// lookupPos finds path, or its nearest ancestor, in positions.
func lookupPos(positions map[string]config.Pos, path string) config.Pos {
	for {
		if p, ok := positions[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return positions[""]
		}
		path = path[:i]
	}
}

// bodyPositions maps each key path of a JSON (or YAML) document to the
// line and column of its value, in config's path syntax (a.b, a[1]). The
// service validates an order by handing its fields to config as a document
// of their own; this puts config's diagnostics back where the client wrote
// the values. A body that does not parse gives an empty map.
func bodyPositions(body []byte) map[string]config.Pos {
	pos := map[string]config.Pos{}
	var doc yaml.Node
	if yaml.Unmarshal(body, &doc) != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return pos
	}
	var walk func(path string, n *yaml.Node, depth int)
	walk = func(path string, n *yaml.Node, depth int) {
		if depth > 32 {
			return
		}
		pos[path] = config.Pos{Line: n.Line, Col: n.Column}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if path != "" {
					key = path + "." + key
				}
				walk(key, n.Content[i+1], depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(fmt.Sprintf("%s[%d]", path, i), c, depth+1)
			}
		}
	}
	walk("", doc.Content[0], 0)
	return pos
}
