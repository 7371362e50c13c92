package render

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/plan"
)

// EncodePlan returns the canonical encoding of p: compact JSON, keys in
// struct order (maps sorted by encoding/json), HTML characters not escaped,
// one trailing newline. The digest is taken over exactly these bytes.
func EncodePlan(p *plan.Plan) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	return buf.Bytes(), nil
}

// PlanDigest is the lowercase hex sha256 of data, the form the agent's
// --plan-sha256 and the report's plan_digest use.
func PlanDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// DecodePlan parses a plan with plan.Decode (unknown fields, duplicate keys,
// trailing data, other versions and an SSH port out of range are errors).
// If wantDigest is not empty the data must hash to it.
func DecodePlan(data []byte, wantDigest string) (*plan.Plan, error) {
	if wantDigest != "" {
		if got := PlanDigest(data); got != wantDigest {
			return nil, fmt.Errorf("plan digest mismatch: got sha256 %s, want %s", got, wantDigest)
		}
	}
	// One decoder for both sides: the agent calls plan.Decode too.
	return plan.Decode(data)
}

// planArgPrefix marks a plan argument that is gzip'd and base64-encoded.
// The plan travels to the launcher as one argument inside user-data, and
// its files (rulesets, sshd and audit configuration) compress to a third:
// compressed, the built-in profiles' user-data fits the smallest provider
// limit (AWS EC2's 16 KB) with room to spare.
const planArgPrefix = "gz:"

// PlanArg is the launcher's plan argument for planJSON: "gz:" and the
// base64 of its deterministic gzip (same plan, same bytes).
func PlanArg(planJSON []byte) (string, error) {
	gz, err := gzipBytes(planJSON)
	if err != nil {
		return "", fmt.Errorf("compress plan: %w", err)
	}
	return planArgPrefix + base64.StdEncoding.EncodeToString(gz), nil
}

// PlanFromArg returns the plan JSON a launcher argument carries: a
// PlanArg, or a JSON object as it is (hand-written test seeds).
func PlanFromArg(arg string) ([]byte, error) {
	b64, ok := strings.CutPrefix(arg, planArgPrefix)
	if !ok {
		if strings.HasPrefix(arg, "{") {
			return []byte(arg), nil
		}
		return nil, errors.New("plan argument is neither gz:BASE64 nor a JSON object")
	}
	gz, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("plan argument: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("plan argument: %w", err)
	}
	// The plan fits one argument (128 KiB); refuse to inflate beyond it.
	data, err := io.ReadAll(io.LimitReader(zr, maxArgBytes+1))
	if err != nil {
		return nil, fmt.Errorf("plan argument: %w", err)
	}
	if len(data) > maxArgBytes {
		return nil, fmt.Errorf("plan argument inflates beyond %d bytes", maxArgBytes)
	}
	return data, nil
}

// LauncherPlanArg finds the launcher's bootcmd entry in a user-data
// document (sh -c SCRIPT hardbake-firstboot KIND SOURCE SHA256 PLAN
// DIGEST) and returns a pointer to its plan argument's node, so a caller
// may read or replace it.
func LauncherPlanArg(doc *yaml.Node) (*yaml.Node, error) {
	var found *yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if found != nil {
			return
		}
		if n.Kind == yaml.SequenceNode && len(n.Content) == 9 && n.Content[0].Value == "sh" &&
			n.Content[3].Value == launcherName {
			found = n.Content[7]
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc)
	if found == nil {
		return nil, errors.New("the user-data carries no hardbake launcher (bootcmd sh -c … hardbake-firstboot)")
	}
	return found, nil
}

// PlanInUserData returns the plan JSON a user-data document carries.
func PlanInUserData(userData []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		return nil, fmt.Errorf("user-data: %w", err)
	}
	n, err := LauncherPlanArg(&doc)
	if err != nil {
		return nil, err
	}
	return PlanFromArg(n.Value)
}
