package verify

import (
	"fmt"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

// PlanFromSeed reads the plan out of a hardbake seed ISO's user-data.
func PlanFromSeed(path string) (*plan.Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fsys, err := iso9660.Read(file.New(f, true), st.Size(), 0, 2048)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable ISO9660 seed: %w", path, err)
	}
	uf, err := fsys.OpenFile("/user-data", os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("%s: no user-data: %w", path, err)
	}
	defer uf.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for b.Len() < 64<<20 {
		n, err := uf.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return PlanFromUserData([]byte(b.String()))
}

// PlanFromUserData finds the plan the launcher is handed in bootcmd.
func PlanFromUserData(data []byte) (*plan.Plan, error) {
	planJSON, err := render.PlanInUserData(data)
	if err != nil {
		return nil, fmt.Errorf("the seed's user-data carries no hardbake plan: %w", err)
	}
	return render.DecodePlan(planJSON, "")
}
