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
	netcfg := fs.Bool("network-config", false, "also write network-config (DHCP on every Ethernet interface)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("render: -o DIR or -o - is required")
	}
	inp, err := in.load(fs)
	if err != nil {
		return err
	}
	res, err := render.Compile(inp.profile, inp.machine, inp.agent, render.Options{NetworkConfig: *netcfg})
	if err != nil {
		return err
	}
	warn(e, res)
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

func warn(e *env, res *render.Result) {
	for _, w := range res.Warnings {
		fmt.Fprintln(e.stderr, "hardbake: warning:", w)
	}
}
