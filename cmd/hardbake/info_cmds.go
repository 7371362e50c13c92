package main

import (
	"fmt"
	"os"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/templates"
)

func runProfiles(e *env, args []string) error {
	fs := newFlags(e, "profiles", "[show NAME]")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		for _, name := range templates.ProfileNames() {
			data, _ := templates.Profile(name)
			p, err := config.DecodeProfile("builtin:"+name, data)
			if err != nil {
				return fmt.Errorf("built-in profile %s: %w", name, err)
			}
			fmt.Fprintf(e.stdout, "%-10s %s\n", name, p.Metadata.Description)
		}
		return nil
	case fs.NArg() == 2 && fs.Arg(0) == "show":
		data, ok := templates.Profile(fs.Arg(1))
		if !ok {
			return usagef("profiles show: no built-in profile %q (built-in: %v)", fs.Arg(1), templates.ProfileNames())
		}
		_, err := e.stdout.Write(data)
		return err
	}
	return usagef("profiles: want no argument or 'show NAME'")
}

func runValidate(e *env, args []string) error {
	fs := newFlags(e, "validate", "[--profile NAME|FILE] FILE...")
	profileRef := fs.String("profile", "baseline", "profile that orders are checked against")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("validate: name at least one profile or order file")
	}
	var errs []error
	for _, file := range fs.Args() {
		data, err := os.ReadFile(file)
		if err != nil {
			return usagef("validate: %v", quotePath(err))
		}
		kind := "order"
		if config.LooksLikeProfile(data) {
			kind = "profile"
			_, err = config.DecodeProfile(file, data)
		} else {
			err = validateOrder(file, data, *profileRef)
		}
		if err == nil {
			fmt.Fprintf(e.stdout, "%s: ok (%s)\n", config.Escape(file), kind) // a file name is input too
		}
		errs = append(errs, err)
	}
	return joinErrors(errs)
}

func validateOrder(file string, data []byte, profileRef string) error {
	p, err := loadProfile(profileRef)
	if err != nil {
		return err
	}
	o, src, err := config.DecodeOrder(file, data)
	if err != nil {
		return err
	}
	_, err = o.Resolve(p, src)
	return err
}

func runSchema(e *env, args []string) error {
	fs := newFlags(e, "schema", "[--format json|markdown]")
	format := fs.String("format", "json", "json (JSON Schema) or markdown (the profile reference)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	switch *format {
	case "json":
		data, err := config.JSONSchema()
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(data)
		return err
	case "markdown":
		_, err := e.stdout.Write([]byte(config.Reference()))
		return err
	}
	return usagef("schema: --format must be json or markdown, not %q", *format)
}
