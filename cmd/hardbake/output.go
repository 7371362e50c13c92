package main

import (
	"errors"
	"fmt"
	"io"

	"hardbake.dev/hardbake/bake"
)

// cliError turns bake's input refusals into usage errors (exit 2) with the
// same text; everything else passes through.
func cliError(err error) error {
	var be *bake.InputError
	if errors.As(err, &be) {
		return usagef("%s", be.Error())
	}
	return err
}

// warnKept says which seed files an existing output directory still holds
// from before: bake never removes what it did not write, so a stale
// network-config or agent from an earlier seed must at least be visible.
func warnKept(w io.Writer, dir string, res *bake.DirResult) {
	for _, name := range res.Kept {
		fmt.Fprintf(w, "hardbake: warning: %s/%s was already there and is not part of this seed; left as it is\n", dir, name)
	}
}
