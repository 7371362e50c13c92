package main

import (
	"fmt"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/images"
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
	res, inputs, err := in.compile(e, fs)
	if err != nil {
		return err
	}
	if err := res.CheckUserDataSize(*maxUserData); err != nil {
		return cliError(err)
	}
	opts := bake.WriteOptions{Field: "-o", Inputs: inputs}
	size := int64(0)
	if format == images.Dir {
		// A new seed directory is 0700 with fixed times, so it is
		// reproducible and private until someone serves it deliberately.
		opts.NewDirMode, opts.FixedTimes = 0o700, true
		dr, err := bake.WriteDir(*out, res.SeedFiles(), opts)
		if err != nil {
			return cliError(err)
		}
		warnKept(e.stderr, *out, dr)
	} else {
		img, err := res.Image(format)
		if err != nil {
			return err
		}
		if err := bake.WriteImage(*out, img, opts); err != nil {
			return cliError(err)
		}
		size = img.Size()
	}
	fmt.Fprintf(e.stderr, "hardbake: wrote %s (%s, %d bytes; profile %s, instance %s, ssh port %d, user-data %d bytes, agent %s)\n",
		*out, format, size, res.Profile.Metadata.Name, res.Machine.InstanceID, res.SSHPort, len(res.UserData), res.Agent.Kind)
	return nil
}
