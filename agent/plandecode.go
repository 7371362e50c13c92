package agent

import "hardbake.dev/hardbake/plan"

// DecodePlan parses a plan with plan.Decode, the decoder render.DecodePlan
// uses too: the generator and the agent read every plan the same way. The
// digest is checked by the caller (Agent.Run), over the file itself.
func DecodePlan(data []byte) (*plan.Plan, error) { return plan.Decode(data) }
