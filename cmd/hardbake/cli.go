package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"hardbake.dev/hardbake/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const (
	exitOK      = 0
	exitFailure = 1
	exitInput   = 2
)

// usageError is bad command-line input; it maps to exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	name, args, summary string
	run                 func(e *env, args []string) error
}

func commands() []command {
	return []command{
		{"render", "[flags] -o DIR|-", "render user-data and meta-data for one VPS", runRender},
		{"iso", "[flags] -o FILE", "write a NoCloud seed (ISO, FAT or directory) with the agent on board", runISO},
		{"edge", "--provider NAME [flags]", "print the provider's edge-firewall and backup API requests for one VPS", runEdge},
		{"verify", "host ADDR | image IMAGE", "check a machine from outside, or boot an image with a seed under QEMU and check it", runVerify},
		{"validate", "FILE...", "check profiles and orders without rendering", runValidate},
		{"profiles", "[show NAME]", "list the built-in profiles, or print one", runProfiles},
		{"schema", "[--format json|markdown]", "print the profile's JSON Schema or reference", runSchema},
		{"version", "", "print the version, and the agents it would put on seeds", runVersion},
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout)
		if len(args) == 0 {
			return exitInput
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(e, c.run(e, args[1:]))
		}
	}
	fmt.Fprintf(stderr, "hardbake: unknown command %q (run 'hardbake help')\n", args[0])
	return exitInput
}

func exitCode(e *env, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(e.stderr, prefixLines(err.Error()))
	var ie *config.InputError
	var ue *usageError
	if errors.As(err, &ie) || errors.As(err, &ue) {
		return exitInput
	}
	return exitFailure
}

// prefixLines puts "hardbake: " before each line of a multi-line error, and
// escapes what is left of control characters and terminal escapes in it
// (the messages quote input already; this is the last line of defence).
func prefixLines(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = "hardbake: " + config.Escape(lines[i])
	}
	return strings.Join(lines, "\n")
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "hardbake turns a hardening profile and a VPS order into cloud-init user-data and seed images.")
	fmt.Fprintln(w, "\nUsage:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  hardbake %-9s %-28s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'hardbake COMMAND --help' for a command's flags. Exit codes: 0 ok, 1 failure, 2 bad input.")
}

// newFlags makes a FlagSet that reports errors instead of exiting.
func newFlags(e *env, name, args string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: hardbake %s %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse runs fs.Parse and turns its errors into usage errors (exit 2).
func parse(e *env, fs *pflag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return err
		}
		// pflag prints an unknown flag's name raw: escape it, so no
		// argument can put a terminal escape or a second line on stderr.
		return usagef("%s: %s", fs.Name(), config.Escape(err.Error()))
	}
	return nil
}
