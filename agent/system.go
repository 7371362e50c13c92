package agent

import (
	"errors"
	"fmt"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// systemFiles is every file the measures own, then every file Settings
// edit (render keeps a file's settings together), with the settings
// applied to its current content. A settings file must exist: the
// distribution owns it, the agent never creates it.
func (r *run) systemFiles() ([]plan.File, error) {
	own := r.plan.System.Files
	files := own[:len(own):len(own)] // appending never writes into the plan
	for _, set := range r.plan.System.Settings {
		i := len(files) - 1
		if i < len(own) || files[i].Path != set.Path {
			data, err := r.Root.ReadFile(set.Path)
			if err != nil {
				return nil, fmt.Errorf("settings file %s: %w", set.Path, err)
			}
			// Mode 0 is 0644 and no owner keeps root's: as the distribution ships it.
			files = append(files, plan.File{Path: set.Path, Content: string(data)})
			i++
		}
		files[i].Content = setKey(files[i].Content, set.Key, set.Value)
	}
	return files, nil
}

// checkSystem proves the files and settings are in place and every
// service the measures bring runs (late stage and check).
func (r *run) checkSystem() (string, error) {
	files, err := r.systemFiles()
	var bad []string
	for _, f := range files {
		if !r.Root.Same(f) {
			bad = append(bad, f.Path)
		}
	}
	for _, unit := range r.plan.System.Services {
		if r.unitState("is-active", unit) != "active" {
			bad = append(bad, unit)
		}
	}
	if err == nil && bad != nil {
		err = errors.New("not as planned: " + strings.Join(bad, ", "))
	}
	if err != nil {
		return plan.StatusFailed, err
	}
	return r.ok(), nil
}

// setKey sets a key of a whitespace-separated "KEY VALUE" file such as
// login.defs: the key's first uncommented line is replaced, or one is
// appended. Comments and other keys stay as they are. A later duplicate
// stays too (distribution files have none; the agent's size budget has
// no room for more).
func setKey(content, key, value string) string {
	line := key + " " + value + "\n"
	lines := strings.SplitAfter(content, "\n")
	for i, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] == key {
			lines[i] = line
			return strings.Join(lines, "")
		}
	}
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	return content + line
}
