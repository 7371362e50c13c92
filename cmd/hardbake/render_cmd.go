package main

import (
	"fmt"

	"hardbake.dev/hardbake/bake"
)

func runRender(e *env, args []string) error {
	fs := newFlags(e, "render", "[flags] -o DIR|-")
	var in inputFlags
	in.register(fs)
	out := fs.StringP("output", "o", "", "output `DIR` (user-data, meta-data), or - for user-data on stdout")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("render: -o DIR or -o - is required")
	}
	res, inputs, err := in.compile(e, fs)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err := e.stdout.Write(res.UserData)
		return err
	}
	// A new directory is 0755 with 0600 files: user-data may carry secrets.
	dr, err := bake.WriteDir(*out, res.Documents(), bake.WriteOptions{Field: "-o", Inputs: inputs, MakeParents: true, NewDirMode: 0o755})
	if err != nil {
		return cliError(err)
	}
	warnKept(e.stderr, *out, dr)
	fmt.Fprintf(e.stderr, "hardbake: wrote %s (profile %s, instance %s, ssh port %d, user-data %d bytes)\n",
		*out, res.Profile.Metadata.Name, res.Machine.InstanceID, res.SSHPort, len(res.UserData))
	return nil
}
