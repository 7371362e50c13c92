package jsonv

import (
	"strconv"
	"unicode/utf8"
)

// Writer builds indented JSON. Callers emit values in the order they want
// them to appear; Writer only tracks commas and indentation.
type Writer struct {
	buf   []byte
	depth int
	// first is true right after an opening bracket (no comma needed).
	first bool
	// inKey is true between Key and the member's value.
	inKey bool
}

// Bytes returns the document with a trailing newline.
func (w *Writer) Bytes() []byte { return append(w.buf, '\n') }

func (w *Writer) newline() {
	w.buf = append(w.buf, '\n')
	for range w.depth {
		w.buf = append(w.buf, ' ', ' ')
	}
}

// elem starts a value inside an array or the document.
func (w *Writer) elem() {
	if w.depth == 0 {
		return
	}
	if !w.first {
		w.buf = append(w.buf, ',')
	}
	w.first = false
	w.newline()
}

// Key starts an object member; the value call follows.
func (w *Writer) Key(k string) {
	w.elem()
	w.buf = AppendString(w.buf, k)
	w.buf = append(w.buf, ':', ' ')
	w.inKey = true
}

func (w *Writer) value() {
	if w.inKey {
		w.inKey = false
		return
	}
	w.elem()
}

// Open starts an object ('{') or array ('[').
func (w *Writer) Open(c byte) {
	w.value()
	w.buf = append(w.buf, c)
	w.depth++
	w.first = true
}

// Close ends the innermost object ('}') or array (']').
func (w *Writer) Close(c byte) {
	w.depth--
	if !w.first {
		w.newline()
	}
	w.first = false
	w.buf = append(w.buf, c)
}

// String writes a string value.
func (w *Writer) String(s string) {
	w.value()
	w.buf = AppendString(w.buf, s)
}

// Int writes an integer value.
func (w *Writer) Int(n int64) {
	w.value()
	w.buf = strconv.AppendInt(w.buf, n, 10)
}

// Float writes a number with the shortest exact representation.
func (w *Writer) Float(f float64) {
	w.value()
	w.buf = strconv.AppendFloat(w.buf, f, 'f', -1, 64)
}

// Bool writes true or false.
func (w *Writer) Bool(b bool) {
	w.value()
	w.buf = strconv.AppendBool(w.buf, b)
}

// Null writes null.
func (w *Writer) Null() {
	w.value()
	w.buf = append(w.buf, "null"...)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD; <, >, & and U+2028/9 are escaped like encoding/json does so the
// output is safe to embed anywhere.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
