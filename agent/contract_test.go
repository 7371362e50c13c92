package agent

import (
	"crypto/sha256"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"hardbake.dev/hardbake/plan"
)

// sameShape fails unless mine and theirs have the same fields, in the same
// order, with the same json tags and (recursively) the same shapes.
func sameShape(t *testing.T, path string, mine, theirs reflect.Type) {
	t.Helper()
	if mine.Kind() != theirs.Kind() {
		t.Errorf("%s: kind %s, plan has %s", path, mine.Kind(), theirs.Kind())
		return
	}
	switch mine.Kind() {
	case reflect.Pointer, reflect.Slice:
		sameShape(t, path+"[]", mine.Elem(), theirs.Elem())
	case reflect.Map:
		sameShape(t, path+"{key}", mine.Key(), theirs.Key())
		sameShape(t, path+"{}", mine.Elem(), theirs.Elem())
	case reflect.Struct:
		if mine.NumField() != theirs.NumField() {
			t.Errorf("%s: %d fields, plan has %d", path, mine.NumField(), theirs.NumField())
			return
		}
		for i := range mine.NumField() {
			a, b := mine.Field(i), theirs.Field(i)
			if a.Name != b.Name || a.Tag.Get("json") != b.Tag.Get("json") {
				t.Errorf("%s field %d: %s %q, plan has %s %q", path, i, a.Name, a.Tag.Get("json"), b.Name, b.Tag.Get("json"))
				continue
			}
			sameShape(t, path+"."+a.Name, a.Type, b.Type)
		}
	}
}

func TestContractMirrorsPlan(t *testing.T) {
	sameShape(t, "Plan", reflect.TypeFor[Plan](), reflect.TypeFor[plan.Plan]())
	sameShape(t, "Report", reflect.TypeFor[Report](), reflect.TypeFor[plan.Report]())
	for _, c := range [][2]string{
		{StateDir, plan.StateDir}, {PlanPath, plan.PlanPath}, {ReportPath, plan.ReportPath},
		{ResultHardened, plan.ResultHardened}, {ResultPartial, plan.ResultPartial}, {ResultFailed, plan.ResultFailed}, {ResultPending, plan.ResultPending},
		{StatusApplied, plan.StatusApplied}, {StatusUnchanged, plan.StatusUnchanged}, {StatusRolledBack, plan.StatusRolledBack},
		{StatusFailed, plan.StatusFailed}, {StatusWaiting, plan.StatusWaiting}, {StatusSkipped, plan.StatusSkipped},
	} {
		if c[0] != c[1] {
			t.Errorf("constant %q, plan has %q", c[0], c[1])
		}
	}
	if Version != plan.Version {
		t.Errorf("Version %d, plan has %d", Version, plan.Version)
	}
}

func TestSHA256(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		data := make([]byte, n*7)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if got, want := sum256(data), sha256.Sum256(data); got != want {
			t.Fatalf("len %d: %x, want %x", len(data), got, want)
		}
	}
	if Digest([]byte("abc")) != plan.Digest([]byte("abc")) {
		t.Error("Digest differs from plan.Digest")
	}
}

// DecodePlan must agree with plan.Decode on every plan it accepts.
func TestDecodePlanMatchesPlanDecode(t *testing.T) {
	full := testPlan()
	minimal := &plan.Plan{Version: 1, SSH: plan.SSH{Port: 2222}}
	empties := testPlan()
	empties.SSH.Expect = map[string]string{}
	empties.Updates.Files = []plan.File{}
	for _, p := range []*plan.Plan{full, minimal, empties} {
		data, err := plan.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := plan.Decode(data, plan.Digest(data))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodePlan(data, Digest(data))
		if err != nil {
			t.Fatalf("DecodePlan: %v", err)
		}
		if !sameValue(got, want) {
			t.Errorf("DecodePlan differs:\n%+v\n%+v", got, want)
		}
	}
}

func TestDecodePlanRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"version":1,"ssh":{"port":22},"extra":1}`, `unknown field "extra"`},
		{`{"version":1,"ssh":{"port":"22"}}`, "plan.ssh.port: want a number"},
		{`{"version":1,"ssh":{"port":0}}`, "out of range"},
		{`{"version":2,"ssh":{"port":22}}`, "version 2"},
		{`{"version":1,"ssh":{"port":22,"drop_in":{"mode":-1}}}`, "plan.ssh.drop_in.mode"},
		{`{"version":1,"ssh":{"port":22}} x`, "trailing"},
	} {
		_, err := DecodePlan([]byte(tc.in), "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.in, err, tc.want)
		}
		if _, perr := plan.Decode([]byte(tc.in), ""); perr == nil && !strings.Contains(tc.in, " x") {
			t.Errorf("%s: plan.Decode accepts what DecodePlan rejects", tc.in)
		}
	}
	if _, err := DecodePlan([]byte(`{}`), strings.Repeat("a", 64)); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("digest: %v", err)
	}
}

func FuzzDecodePlan(f *testing.F) {
	data, _ := plan.Encode(testPlan())
	f.Add(data)
	f.Add([]byte(`{"version":1,"ssh":{"port":22},"firewall":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodePlan(data, "")
		if err != nil {
			return
		}
		// Whatever DecodePlan accepts, plan.Decode accepts the same way.
		want, perr := plan.Decode(data, "")
		if perr != nil {
			t.Fatalf("DecodePlan accepted what plan.Decode rejects (%v): %q", perr, data)
		}
		if !sameValue(got, want) {
			t.Fatalf("values differ for %q", data)
		}
	})
}

// sameValue compares a mirrored value with plan's via their field values.
func sameValue(mine, theirs any) bool {
	return equalValues(reflect.ValueOf(mine), reflect.ValueOf(theirs))
}

func equalValues(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValues(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !equalValues(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalValues(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		return a.IsNil() == b.IsNil() && reflect.DeepEqual(a.Interface(), b.Interface())
	}
	return a.Interface() == b.Interface()
}
