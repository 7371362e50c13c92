package main

import (
	"fmt"

	"hardbake.dev/hardbake/render"
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
	inp, res, err := in.compile(e, fs)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err := e.stdout.Write(res.UserData)
		return err
	}
	if err := writeDir(*out, renderFiles(res)); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "hardbake: wrote %s (profile %s, instance %s, ssh port %d, user-data %d bytes)\n",
		*out, inp.profile.Metadata.Name, inp.machine.InstanceID, res.SSHPort, len(res.UserData))
	return nil
}

func renderFiles(res *render.Result) []outFile {
	files := []outFile{{"user-data", res.UserData}, {"meta-data", res.MetaData}}
	if res.NetworkConfig != nil {
		files = append(files, outFile{"network-config", res.NetworkConfig})
	}
	return files
}
