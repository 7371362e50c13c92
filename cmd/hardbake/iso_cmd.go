package main

import (
	"fmt"
	"os"

	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/render"
)

func runISO(e *env, args []string) error {
	fs := newFlags(e, "iso", "[flags] -o FILE")
	var in inputFlags
	in.register(fs)
	out := fs.StringP("output", "o", "", "output `FILE` (a directory with --format dir)")
	formatFlag := fs.String("format", "iso", "seed format: iso (ISO9660, label cidata), vfat or dir")
	maxUserData := fs.Int("max-user-data", 0, "refuse a user-data larger than `BYTES` (0: no limit)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *out == "" || *out == "-" {
		return usagef("iso: -o FILE is required")
	}
	format, err := images.ParseFormat(*formatFlag)
	if err != nil {
		return usagef("--format: %v", err)
	}
	inp, res, err := in.compile(e, fs)
	if err != nil {
		return err
	}
	if *maxUserData > 0 && len(res.UserData) > *maxUserData {
		return usagef("--max-user-data: user-data is %d bytes, over the limit of %d", len(res.UserData), *maxUserData)
	}
	var files []images.File
	for _, f := range renderFiles(res) {
		files = append(files, images.File{Name: f.name, Data: f.data, Mode: 0o644})
	}
	if inp.agent.Kind == render.AgentSeed {
		files = append(files, images.File{Name: render.SeedName(inp.agent.Arch), Data: inp.agentBinary, Mode: 0o755})
	}
	if err := images.Write(format, *out, files); err != nil {
		return err
	}
	size := int64(0)
	if st, err := os.Stat(*out); err == nil && !st.IsDir() {
		size = st.Size()
	}
	fmt.Fprintf(e.stderr, "hardbake: wrote %s (%s, %d bytes; profile %s, instance %s, ssh port %d, user-data %d bytes, agent %s)\n",
		*out, format, size, inp.profile.Metadata.Name, inp.machine.InstanceID, res.SSHPort, len(res.UserData), inp.agent.Kind)
	return nil
}
