package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

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
