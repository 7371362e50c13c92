// Package templates holds the configuration files a plan carries and the
// built-in profiles, embedded in the binary. Templates only ever receive
// typed values that config has validated, so no input can add a line.
package templates

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"text/template"
)

//go:embed files/*.tmpl
var files embed.FS

//go:embed files/bootcmd.sh
var bootcmd string

//go:embed profiles/*.yaml
var profiles embed.FS

// set is parsed once at start-up and only read afterwards.
var set = template.Must(template.New("").
	Funcs(template.FuncMap{"join": strings.Join}).
	Option("missingkey=error").
	ParseFS(files, "files/*.tmpl"))

// Render executes the named template (its file name, e.g. "sshd.conf.tmpl").
func Render(name string, data any) (string, error) {
	var b strings.Builder
	if err := set.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}

// Bootcmd is the launcher script cloud-init runs as the first bootcmd entry.
func Bootcmd() string { return bootcmd }

// Profile returns a built-in profile's YAML.
func Profile(name string) ([]byte, bool) {
	data, err := profiles.ReadFile("profiles/" + name + ".yaml")
	return data, err == nil
}

// ProfileNames lists the built-in profiles, sorted.
func ProfileNames() []string {
	entries, _ := fs.ReadDir(profiles, "profiles")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}
