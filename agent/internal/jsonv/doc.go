// Package jsonv is a minimal JSON reader and writer for the first-boot
// agent. encoding/json pulls in reflection that costs the static agent about
// 0.5 MiB (measured in docs/bench/agent.md), more than the whole size budget
// above a hello-world, so the agent parses into plain values and encodes by
// hand instead.
//
// Parse returns: Object (map[string]any), []any, string, Number, bool or nil.
package jsonv
