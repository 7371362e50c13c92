package jsonv

import (
	"bytes"
	"errors"
	"io"
)

var errTrailing = errors.New("invalid JSON")

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
