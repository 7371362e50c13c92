package main

import (
	"fmt"
	"strings"
)

// parseFlags reads "--name value", "--name=value" (one or two dashes) for
// the names in vals and rejects anything else. It replaces package flag,
// which costs ~80 KiB in the static agent (its reflection keeps method
// tables alive) for four string options.
func parseFlags(args []string, vals map[string]*string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			return fmt.Errorf("unexpected argument %q", a)
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		dst, ok := vals[name]
		if !ok {
			return fmt.Errorf("unknown flag %q", a)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return fmt.Errorf("flag %q needs a value", a)
			}
			i++
			val = args[i]
		}
		*dst = val
	}
	return nil
}
