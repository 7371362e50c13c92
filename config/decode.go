package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Source remembers where each value of a decoded document came from, so that
// validation, which runs after decoding, can still name file:line:column.
type Source struct {
	File  string
	pos   map[string]Pos    // key path -> position of its value
	null  map[string]bool   // key paths given as null (absent: defaults apply)
	flags map[string]string // key path -> the flag that overrode it
}

// NewSource returns an empty Source, for values that come from flags only.
func NewSource(file string) *Source {
	return &Source{File: file, pos: map[string]Pos{}, null: map[string]bool{}, flags: map[string]string{}}
}

// given reports whether the document set path to a non-null value, which
// tells an explicit 0 from an absent key whose zero value means "default".
func (s *Source) given(path string) bool {
	_, ok := s.pos[path]
	return ok && !s.null[path]
}

// Pos returns the position of path, or of its nearest ancestor that has one.
func (s *Source) Pos(path string) Pos {
	for {
		if p, ok := s.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return s.pos[""]
		}
		path = path[:i]
	}
}

// SetFlag records that the value at path was set by a command-line flag, so
// errors about it name the flag instead of a file position.
func (s *Source) SetFlag(path, flag string) { s.flags[path] = flag }

// nodeDecoder is implemented by types with their own YAML form, such as a
// port that may be a number or "random".
type nodeDecoder interface {
	decodeNode(n *yaml.Node) error
}

// decodeStrict decodes exactly one YAML (or JSON) document into out, which
// must be a pointer to a struct. Unknown keys, duplicate keys, wrong types,
// empty input and extra documents are errors naming file:line:column and the
// key path; all such errors in the document are reported together.
func decodeStrict(file string, data []byte, out any) (*Source, error) {
	src := NewSource(file)
	errs := &errList{src: src}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if len(bytes.TrimSpace(data)) == 0 { // yaml.v3 calls a lone tab a syntax error
		errs.add(CodeEmptyDocument, "", "empty document")
		return src, errs.err()
	}
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			errs.add(CodeEmptyDocument, "", "empty document")
			return src, errs.err()
		}
		return src, &InputError{Errs: []*FieldError{syntaxError(file, err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		errs.addAt(Pos{extra.Line, extra.Column}, CodeMultipleDocuments, "", "only one document is allowed")
	} else if !errors.Is(err, io.EOF) {
		return src, &InputError{Errs: []*FieldError{syntaxError(file, err)}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			errs.add(CodeEmptyDocument, "", "empty document")
			return src, errs.err()
		}
		root = root.Content[0]
	}
	if isNull(root) { // no position: "---" alone puts it on the line after
		errs.add(CodeEmptyDocument, "", "empty document")
		return src, errs.err()
	}
	src.pos[""] = Pos{root.Line, root.Column}
	d := &decoder{src: src, errs: errs}
	d.value("", root, reflect.ValueOf(out).Elem())
	return src, errs.err()
}

// syntaxError turns a yaml.v3 parse error ("yaml: line 3: …") into a
// FieldError with the line in the position.
func syntaxError(file string, err error) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	fe := &FieldError{File: file, Code: CodeSyntax, Reason: "invalid YAML: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, convErr := strconv.Atoi(rest[:i]); convErr == nil {
				fe.Pos = Pos{Line: n, Col: 1}
				fe.Reason = "invalid YAML: " + strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return fe
}

type decoder struct {
	src    *Source
	errs   *errList
	values int // values decoded so far, aliases counted each time they are used
}

// maxValues bounds the work one document can cause: aliases let a small
// document name the same list thousands of times over (a few kilobytes
// expanding to millions of values). Real profiles have a few hundred.
const maxValues = 100000

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// join appends a key to a key path. A key that is not a plain name (it
// has a dot, a space, a control character…) is quoted, so a path always
// reads one way and no key can put raw text into a message.
func join(path, key string) string {
	if !plainKeyRE.MatchString(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)

var nodeDecoderType = reflect.TypeOf((*nodeDecoder)(nil)).Elem()

func (d *decoder) value(path string, n *yaml.Node, v reflect.Value) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if d.values++; d.values > maxValues {
		if d.values == maxValues+1 {
			d.errs.addAt(Pos{n.Line, n.Column}, CodeTooComplex, "", "document too complex: more than %d values (aliases expanding too far?)", maxValues)
		}
		return
	}
	d.src.pos[path] = Pos{n.Line, n.Column}
	// An explicit tag changes how a reader takes the value (!!bool yes is
	// false here and true to cloud-init; !!int "5" is a string in JSON):
	// refuse every one except !!str on a string, which only says what the
	// value already is.
	if n.Style&yaml.TaggedStyle != 0 && !(v.Kind() == reflect.String && n.Kind == yaml.ScalarNode && n.Tag == "!!str") {
		d.errs.add(CodeExplicitTag, path, "explicit YAML tag %s is not allowed here: it changes how readers take the value; write the value plainly", strconv.Quote(n.Tag))
		return
	}
	if isNull(n) {
		d.src.null[path] = true
		return // absent: the default applies
	}
	if v.CanAddr() && v.Addr().Type().Implements(nodeDecoderType) {
		if err := v.Addr().Interface().(nodeDecoder).decodeNode(n); err != nil {
			d.errs.add(codeOf(err), path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.value(path, n, elem.Elem())
		v.Set(elem)
	case reflect.Struct:
		d.structValue(path, n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errs.add(CodeWrongType, path, "must be a list, not %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.value(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errs.add(CodeWrongType, path, "must be a mapping, not %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		d.pairs(path, n, func(key string, keyNode, val *yaml.Node) {
			elem := reflect.New(v.Type().Elem()).Elem()
			d.value(join(path, key), val, elem)
			m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
		})
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			d.errs.add(CodeWrongType, path, "must be a string, not %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.errs.add(CodeWrongType, path, "must be an integer, not %s", describe(n))
			return
		}
		i, reason := parseDecimal(n.Value)
		if reason != "" {
			d.errs.add(CodeNumberSpelling, path, "%s", reason)
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		// Only the JSON spellings: YAML 1.2 readers also take True and TRUE,
		// YAML 1.1 readers (cloud-init's) also yes, no, on, off, y and n.
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || (n.Value != "true" && n.Value != "false") {
			d.errs.add(CodeWrongType, path, "must be true or false (spelled so), not %s", describe(n))
			return
		}
		v.SetBool(n.Value == "true")
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", v.Type(), path))
	}
}

// pairs walks a mapping node, rejecting non-string keys, duplicate keys and
// merge keys, and calls fn for each remaining pair.
func (d *decoder) pairs(path string, n *yaml.Node, fn func(key string, keyNode, val *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if k.Kind != yaml.ScalarNode || (k.Tag != "!!str" && k.Tag != "!!merge") {
			d.src.pos[kp] = Pos{k.Line, k.Column}
			d.errs.add(CodeWrongType, kp, "keys must be strings, not %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			d.src.pos[kp] = Pos{k.Line, k.Column}
			d.errs.add(CodeMergeKey, kp, "merge keys (<<) are not supported; write the values out")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errs.addAt(Pos{k.Line, k.Column}, CodeDuplicateKey, kp, "duplicate key %q (first defined on line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		fn(k.Value, k, val)
	}
}

func (d *decoder) structValue(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(CodeWrongType, path, "must be a mapping, not %s", describe(n))
		return
	}
	fields := structFields(v.Type())
	d.pairs(path, n, func(key string, keyNode, val *yaml.Node) {
		idx, ok := fields[key]
		if !ok {
			kp := join(path, key)
			d.src.pos[kp] = Pos{keyNode.Line, keyNode.Column}
			d.errs.add(CodeUnknownKey, kp, "unknown key (allowed: %s)", strings.Join(sortedKeys(fields), ", "))
			return
		}
		d.value(join(path, key), val, v.Field(idx))
	})
}

// structFields maps each YAML key of t to its field index.
func structFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		name := yamlName(t.Field(i))
		if name != "" {
			m[name] = i
		}
	}
	return m
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// describe names what a node is, for "must be X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!int":
			return "the integer " + Quote(n.Value)
		case "!!bool":
			return "the boolean " + Quote(n.Value)
		case "!!float":
			return "the number " + Quote(n.Value)
		case "!!null":
			return "null"
		}
		return fmt.Sprintf("%q %q", n.Tag, n.Value)
	}
	return "something else"
}

// yamlUnmarshalLoose is a plain decode for sniffing a document's shape.
func yamlUnmarshalLoose(data []byte, out any) error {
	return yaml.Unmarshal(data, out)
}
