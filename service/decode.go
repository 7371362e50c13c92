package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Request body limits.
const (
	MaxOrderBytes   = 64 << 10  // an order is a few keys and SSH keys
	MaxProfileBytes = 256 << 10 // a profile document with comments
)

// readBody reads at most limit bytes of r's body; a larger body is an
// *apiError with status 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body over the limit of %d bytes", limit),
				diags: []Diagnostic{{Code: CodeTooLarge, Severity: "error", File: "request", Message: fmt.Sprintf("body over %d bytes", limit)}}}
		}
		return nil, &apiError{status: http.StatusBadRequest, msg: "reading request body: " + err.Error()}
	}
	return body, nil
}

// decodeStrictJSON decodes exactly one JSON value from data into v:
// unknown fields, trailing data, and type mismatches are errors, each
// returned as a diagnostic naming the line and column (file "request").
func decodeStrictJSON(data []byte, v any) []Diagnostic {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return []Diagnostic{jsonDiagnostic(data, dec, err)}
	}
	// A second value (or garbage) after the first is an error, not
	// something to ignore: `{..}{..}` is not one order.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		line, col := lineCol(data, dec.InputOffset())
		return []Diagnostic{{Code: CodeSyntax, Severity: "error", File: "request", Line: line, Column: col, Message: "unexpected data after the JSON value"}}
	}
	return nil
}

func jsonDiagnostic(data []byte, dec *json.Decoder, err error) Diagnostic {
	d := Diagnostic{Code: CodeSyntax, Severity: "error", File: "request"}
	off := dec.InputOffset()
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
		d.Message = "invalid JSON: " + se.Error()
	case errors.As(err, &te):
		off = te.Offset
		d.Code, d.Path = CodeType, te.Field
		d.Message = fmt.Sprintf("must be %s, not a JSON %s", jsonTypeName(te.Type.Kind().String()), te.Value)
	case errors.Is(err, io.EOF):
		d.Message = "empty body: want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		d.Message = "invalid JSON: unexpected end of input"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		d.Code = CodeUnknownField
		d.Path = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		d.Message = "unknown field"
	default:
		d.Message = "invalid JSON: " + err.Error()
	}
	d.Line, d.Column = lineCol(data, off)
	return d
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice":
		return "a list"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	default:
		return "a number"
	}
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int64) (int, int) {
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}
