package stamp

import "testing"

func TestMakeFindVersion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		binary string
		want   string
		ok     bool
	}{
		{"stamp among other data", "\x7fELF\x00\x00go1.26" + Make("0.0~git20261202.c96c5c1") + "runtime.main", "0.0~git20261202.c96c5c1", true},
		{"no stamp", "\x7fELF plain", "", false},
		{"a stray prefix first", "[hardbake-version:\x00abc" + Make("1.0"), "1.0", true},
		{"prefix without end", "[hardbake-version:1.2.3", "", false},
		{"empty version", Make(""), "", false},
		{"control character inside", "[hardbake-version:1.2\n3]", "", false},
		{"too long", "[hardbake-version:" + string(make([]byte, 200)) + "]", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Find([]byte(tc.binary))
			if got != tc.want || ok != tc.ok {
				t.Errorf("Find = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if v := Version(Make("1.2.3")); v != "1.2.3" {
		t.Errorf("Version(Make) = %q", v)
	}
	if v := Version(""); v != "dev" {
		t.Errorf("Version of an unstamped build = %q", v)
	}
	if v := Version("1.2.3"); v != "1.2.3" {
		t.Errorf("Version(1.2.3) = %q", v)
	}
}

func FuzzFind(f *testing.F) {
	f.Add([]byte(Make("1.0")))
	f.Add([]byte("[hardbake-version:]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := Find(data)
		if ok && Version(Make(v)) != v {
			t.Fatalf("round trip of %q", v)
		}
	})
}
