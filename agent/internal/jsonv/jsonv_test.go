package jsonv

import (
	"encoding/json"
	"reflect"
	"testing"
)

// toStd converts a Parse result to what encoding/json produces with UseNumber.
func toStd(v any) any {
	switch x := v.(type) {
	case Object:
		m := map[string]any{}
		for k, e := range x {
			m[k] = toStd(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = toStd(e)
		}
		return a
	case Number:
		return json.Number(x)
	}
	return v
}

func stdParse(data []byte) (any, error) {
	if !json.Valid(data) {
		return nil, errTrailing
	}
	var v any
	dec := json.NewDecoder(bytesReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func TestParseMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `null`, `true`, `-0.5e+10`, `"a\u00e9\ud83d\ude00\n\"x\\"`,
		`{"a":[1,2,{"b":null}],"c":"\u2028","d":false}`,
		` {"nftables": [{"metainfo": {"version": "1.0.6"}}]} `,
		"\"\xff\"",
	} {
		got, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%s): %v", in, err)
		}
		want, err := stdParse([]byte(in))
		if err != nil {
			t.Fatalf("std(%s): %v", in, err)
		}
		if !reflect.DeepEqual(toStd(got), want) {
			t.Errorf("Parse(%s) = %#v, want %#v", in, toStd(got), want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{``, `{`, `[1,]`, `{"a" 1}`, `01`, `1.`, `"\x"`, "\"\x01\"", `tru`, `{} x`, `-`} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestWriterRoundTrip(t *testing.T) {
	var w Writer
	w.Open('{')
	w.Key("s")
	w.String("x<y>&\"\\\n\x01\u2028\xff")
	w.Key("n")
	w.Int(-42)
	w.Key("f")
	w.Float(12.25)
	w.Key("b")
	w.Bool(true)
	w.Key("z")
	w.Null()
	w.Key("empty")
	w.Open('[')
	w.Close(']')
	w.Key("arr")
	w.Open('[')
	w.Int(1)
	w.Open('{')
	w.Key("k")
	w.String("v")
	w.Close('}')
	w.Close(']')
	w.Close('}')
	var got map[string]any
	if err := json.Unmarshal(w.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, w.Bytes())
	}
	want := map[string]any{
		"s": "x<y>&\"\\\n\x01\u2028\ufffd", "n": -42.0, "f": 12.25, "b": true, "z": nil,
		"empty": []any{}, "arr": []any{1.0, map[string]any{"k": "v"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"a":[1,"b",null,true]}`, `"\ud800"`, `1e5`, `[{}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(data)
		want, stdErr := stdParse(data)
		if (err == nil) != (stdErr == nil) {
			// encoding/json accepts some deep nesting we refuse on purpose.
			if err != nil && stdErr == nil && depth(want) > maxDepth {
				return
			}
			t.Fatalf("Parse err=%v, encoding/json err=%v for %q", err, stdErr, data)
		}
		if err == nil && !reflect.DeepEqual(toStd(got), want) {
			t.Fatalf("mismatch for %q: %#v vs %#v", data, toStd(got), want)
		}
	})
}

func depth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	case []any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	}
	return 0
}
