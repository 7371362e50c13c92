package agent

import (
	"fmt"
	"math"
	"strconv"

	"hardbake.dev/hardbake/agent/internal/jsonv"
)

// decoder maps parsed JSON onto Go values strictly: unknown keys and wrong
// types are errors naming the key path. null leaves the zero value, as
// encoding/json does. The first error sticks; later calls are no-ops.
type decoder struct{ err error }

func (d *decoder) fail(path, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
}

// object calls fields[key] for every member of v and rejects unknown keys.
func (d *decoder) object(path string, v any, fields map[string]func(path string, v any)) {
	if v == nil || d.err != nil {
		return
	}
	obj, ok := v.(jsonv.Object)
	if !ok {
		d.fail(path, "want an object")
		return
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sortStrings(keys) // deterministic error for several bad keys
	for _, k := range keys {
		f, ok := fields[k]
		if !ok {
			d.fail(path, "unknown field %q", k)
			return
		}
		f(path+"."+k, obj[k])
	}
}

func (d *decoder) str(dst *string) func(string, any) {
	return func(path string, v any) {
		if v == nil {
			return
		}
		s, ok := v.(string)
		if !ok {
			d.fail(path, "want a string")
			return
		}
		*dst = s
	}
}

func (d *decoder) boolean(dst *bool) func(string, any) {
	return func(path string, v any) {
		if v == nil {
			return
		}
		b, ok := v.(bool)
		if !ok {
			d.fail(path, "want true or false")
			return
		}
		*dst = b
	}
}

// integer parses a JSON number within [lo, hi].
func (d *decoder) integer(path string, v any, lo, hi int64) (int64, bool) {
	n, ok := v.(jsonv.Number)
	if !ok {
		d.fail(path, "want a number")
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || i < lo || i > hi {
		d.fail(path, "want an integer in [%d, %d], got %s", lo, hi, n)
		return 0, false
	}
	return i, true
}

func (d *decoder) int(dst *int) func(string, any) {
	return func(path string, v any) {
		if v == nil {
			return
		}
		if i, ok := d.integer(path, v, math.MinInt, math.MaxInt); ok {
			*dst = int(i)
		}
	}
}

func (d *decoder) uint32(dst *uint32) func(string, any) {
	return func(path string, v any) {
		if v == nil {
			return
		}
		if i, ok := d.integer(path, v, 0, math.MaxUint32); ok {
			*dst = uint32(i)
		}
	}
}

func (d *decoder) float(dst *float64) func(string, any) {
	return func(path string, v any) {
		if v == nil {
			return
		}
		n, ok := v.(jsonv.Number)
		if !ok {
			d.fail(path, "want a number")
			return
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			d.fail(path, "bad number %s", n)
			return
		}
		*dst = f
	}
}

func (d *decoder) stringMap(dst *map[string]string) func(string, any) {
	return func(path string, v any) {
		if v == nil {
			return
		}
		obj, ok := v.(jsonv.Object)
		if !ok {
			d.fail(path, "want an object")
			return
		}
		m := make(map[string]string, len(obj))
		for k, e := range obj {
			s, ok := e.(string)
			if !ok && e != nil {
				d.fail(path+"."+k, "want a string")
				return
			}
			m[k] = s
		}
		*dst = m
	}
}

// array calls elem for each element of a JSON array; n is its length.
func (d *decoder) array(path string, v any, alloc func(n int), elem func(i int, path string, v any)) {
	if v == nil || d.err != nil {
		return
	}
	arr, ok := v.([]any)
	if !ok {
		d.fail(path, "want an array")
		return
	}
	alloc(len(arr))
	for i, e := range arr {
		elem(i, path+"["+strconv.Itoa(i)+"]", e)
	}
}
