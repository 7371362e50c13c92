//go:build cgo && libsqlite3

package store

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden schema files in testdata/schema")

// dumpSchema returns the schema of the database as SQL text, one object
// after another in name order (the bench_raw scratch table excluded).
func dumpSchema(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	err := s.tx(ctxT(t), readTx, func(tx *sql.Tx) error {
		b.Reset()
		rows, err := tx.Query(`SELECT type, name, sql FROM sqlite_master
WHERE name NOT LIKE 'sqlite_%' AND name != 'bench_raw' AND sql IS NOT NULL ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var typ, name, q string
			if err := rows.Scan(&typ, &name, &q); err != nil {
				return err
			}
			fmt.Fprintf(&b, "-- %s %s\n%s;\n\n", typ, name, q)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestSchemaGolden keeps migrations append-only: the schema after each
// version is pinned in testdata/schema/vN.sql. Editing a released
// migration changes its version's file, which review sees; the fix for a
// schema mistake is a new migration, which only adds a file. Regenerate
// with `go test -tags libsqlite3 ./store -run TestSchemaGolden -update`.
func TestSchemaGolden(t *testing.T) {
	all := schema()
	for v := 1; v <= len(all); v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			s := openStore(t, Config{migrations: all[:v]})
			got := dumpSchema(t, s)
			path := filepath.Join("testdata", "schema", fmt.Sprintf("v%d.sql", v))
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("schema after migration %d differs from %s: a released migration was edited; add a new one instead.\n%s",
					v, path, lineDiff(string(want), got))
			}
		})
	}
	// No golden file without a migration (a removed migration).
	extra := filepath.Join("testdata", "schema", fmt.Sprintf("v%d.sql", len(all)+1))
	if _, err := os.Stat(extra); err == nil && !*update {
		t.Errorf("%s exists but there are only %d migrations: migrations were removed", extra, len(all))
	}
}

// lineDiff is a minimal readable diff: the lines only in want (-) and only
// in got (+), in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	inW, inG := map[string]int{}, map[string]int{}
	for _, l := range w {
		inW[l]++
	}
	for _, l := range g {
		inG[l]++
	}
	var b strings.Builder
	for _, l := range w {
		if inG[l] == 0 {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range g {
		if inW[l] == 0 {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

// TestUpgradeFromEveryVersion stores data at each older schema version,
// restarts the node with the full list and checks the data survived and the
// newer features work.
func TestUpgradeFromEveryVersion(t *testing.T) {
	all := schema()
	for v := 1; v < len(all); v++ {
		t.Run(fmt.Sprintf("from v%d", v), func(t *testing.T) {
			dir := t.TempDir()
			old := openStore(t, Config{Dir: dir, migrations: all[:v]})
			ctx := ctxT(t)
			if got, err := old.SchemaVersion(ctx); err != nil || got != v {
				t.Fatalf("old version %d %v, want %d", got, err, v)
			}
			// Profiles and orders exist from version 1 on.
			p := mustPutProfile(t, old, "web", "a: 1\n")
			o := mustCreate(t, old, newOrder(p, "up", "h"))
			closeStore(t, old)

			s := openStore(t, Config{Dir: dir})
			if got, err := s.SchemaVersion(ctx); err != nil || got != len(all) {
				t.Fatalf("upgraded version %d %v, want %d", got, err, len(all))
			}
			got, err := s.GetOrder(ctx, o.ID)
			if err != nil || got.ClientOrderID != "up" {
				t.Fatalf("order after upgrade: %+v %v", got, err)
			}
			if _, err := s.RecordReport(ctx, report(o.ID, StatusHardened, "n")); err != nil {
				t.Fatalf("report after upgrade: %v", err)
			}
			if _, err := s.RecordReport(ctx, report(o.ID, StatusHardened, "n")); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay after upgrade: %v", err)
			}
			// The upgraded schema is the one a new database gets.
			fresh := openStore(t, Config{})
			if a, b := dumpSchema(t, s), dumpSchema(t, fresh); a != b {
				t.Fatalf("upgraded schema differs from a fresh one:\n%s", lineDiff(b, a))
			}
		})
	}
}

// TestSchemaTooNew: an older binary refuses a database a newer one
// migrated, and leaves it alone.
func TestSchemaTooNew(t *testing.T) {
	all := schema()
	dir := t.TempDir()
	s := openStore(t, Config{Dir: dir})
	closeStore(t, s)
	_, err := Open(ctxT(t), Config{Dir: dir, migrations: all[:len(all)-1]})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("err = %v, want ErrSchemaTooNew", err)
	}
	s2 := openStore(t, Config{Dir: dir})
	if v, err := s2.SchemaVersion(ctxT(t)); err != nil || v != len(all) {
		t.Fatalf("version after refusal: %d %v", v, err)
	}
}

// TestMigrationList: versions must be 1, 2, ... and a failing migration
// leaves the database at the version before it.
func TestMigrationList(t *testing.T) {
	all := schema()
	for i, m := range all {
		if m.version != i+1 || m.name == "" || m.up == nil {
			t.Errorf("migration %d: %+v", i, m)
		}
	}
	if LatestSchemaVersion() != len(all) {
		t.Errorf("LatestSchemaVersion = %d", LatestSchemaVersion())
	}
	skipped := []migration{all[0], {3, "gap", all[1].up}}
	if _, err := Open(ctxT(t), Config{Dir: t.TempDir(), Address: freeAddr(t), migrations: skipped}); err == nil {
		t.Fatal("a list with a gap was accepted")
	}

	dir := t.TempDir()
	broken := []migration{all[0], {2, "broken", func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE half_done (x INTEGER)`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `THIS IS NOT SQL`)
		return err
	}}}
	if _, err := Open(ctxT(t), Config{Dir: dir, Address: freeAddr(t), migrations: broken}); err == nil {
		t.Fatal("a failing migration was accepted")
	}
	s := openStore(t, Config{Dir: dir, migrations: all[:1]})
	if v, err := s.SchemaVersion(ctxT(t)); err != nil || v != 1 {
		t.Fatalf("after a failed migration 2: version %d %v, want 1", v, err)
	}
	if strings.Contains(dumpSchema(t, s), "half_done") {
		t.Fatal("the failed migration's first statement was kept")
	}
}
