package images

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"
)

// imagePage is the granularity of an Image's storage. Pages that were never
// written read as zeros and are skipped when the image is copied to a file,
// so a FAT seed (a 33 MiB volume holding a few megabytes) stays sparse on
// disk and small in memory.
const imagePage = 4096

// Image is a seed image (ISO or FAT) built in memory by Build. It is
// sparse: only the pages go-diskfs and the normalizers wrote are stored.
// An Image is not safe for concurrent writes; reading it (WriteTo, Bytes,
// CopyTo) from several goroutines at once is fine once Build returned.
type Image struct {
	pages map[int64][]byte // page index -> imagePage bytes
	size  int64
}

func newImage() *Image { return &Image{pages: map[int64][]byte{}} }

// Size is the image's length in bytes.
func (m *Image) Size() int64 { return m.size }

// ReadAt reads like a file: zeros where nothing was written, io.EOF past
// the end.
func (m *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("image: negative offset")
	}
	if off >= m.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := m.size - off; int64(n) > rest {
		n = int(rest)
	}
	for done := 0; done < n; {
		pos := off + int64(done)
		idx, in := pos/imagePage, int(pos%imagePage)
		chunk := min(imagePage-in, n-done)
		if pg, ok := m.pages[idx]; ok {
			copy(p[done:done+chunk], pg[in:in+chunk])
		} else {
			clear(p[done : done+chunk])
		}
		done += chunk
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes like a file, growing the image as needed.
func (m *Image) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("image: negative offset")
	}
	for done := 0; done < len(p); {
		pos := off + int64(done)
		idx, in := pos/imagePage, int(pos%imagePage)
		chunk := min(imagePage-in, len(p)-done)
		pg, ok := m.pages[idx]
		if !ok {
			pg = make([]byte, imagePage)
			m.pages[idx] = pg
		}
		copy(pg[in:in+chunk], p[done:done+chunk])
		done += chunk
	}
	if end := off + int64(len(p)); end > m.size {
		m.size = end
	}
	return len(p), nil
}

// truncate sets the size like ftruncate: bytes past a shrunk end are
// dropped, so growing again reads zeros there.
func (m *Image) truncate(size int64) {
	if size < m.size {
		for idx, pg := range m.pages {
			start := idx * imagePage
			switch {
			case start >= size:
				delete(m.pages, idx)
			case start+imagePage > size:
				clear(pg[size-start:])
			}
		}
	}
	m.size = size
}

// WriteTo streams the whole image, holes as zeros, to w.
func (m *Image) WriteTo(w io.Writer) (int64, error) {
	var zero [imagePage]byte
	var total int64
	for idx := int64(0); idx*imagePage < m.size; idx++ {
		buf := zero[:]
		if pg, ok := m.pages[idx]; ok {
			buf = pg
		}
		if rest := m.size - idx*imagePage; rest < imagePage {
			buf = buf[:rest]
		}
		n, err := w.Write(buf)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Bytes returns the whole image as one slice.
func (m *Image) Bytes() []byte {
	b := make([]byte, m.size)
	_, _ = m.ReadAt(b, 0) // cannot fail: b is exactly the image
	return b
}

// SparseFile is what CopyTo writes into: an *os.File does.
type SparseFile interface {
	io.WriterAt
	Truncate(size int64) error
}

// CopyTo writes the image into f, which must be empty, leaving the pages
// never written as holes (f.Truncate sets the length).
func (m *Image) CopyTo(f SparseFile) error {
	if err := f.Truncate(m.size); err != nil {
		return fmt.Errorf("size image file: %w", err)
	}
	for idx, pg := range m.pages {
		off := idx * imagePage
		buf := pg
		if rest := m.size - off; rest < imagePage {
			buf = pg[:rest]
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return fmt.Errorf("write image: %w", err)
		}
	}
	return nil
}

// memBackend lets go-diskfs build onto an Image (its backend.Storage).
type memBackend struct {
	img *Image
	pos int64
}

var _ backend.Storage = (*memBackend)(nil)

func (b *memBackend) Stat() (fs.FileInfo, error) { return memInfo{size: b.img.size}, nil }
func (b *memBackend) Close() error               { return nil }
func (b *memBackend) Path() string               { return "" }

// Sys has no file to offer: go-diskfs only wants it for ioctls on devices.
func (b *memBackend) Sys() (*os.File, error)                         { return nil, backend.ErrNotSuitable }
func (b *memBackend) Writable() (backend.WritableFile, error)        { return b, nil }
func (b *memBackend) ReadAt(p []byte, off int64) (int, error)        { return b.img.ReadAt(p, off) }
func (b *memBackend) WriteAt(p []byte, off int64) (n int, err error) { return b.img.WriteAt(p, off) }

func (b *memBackend) Read(p []byte) (int, error) {
	n, err := b.img.ReadAt(p, b.pos)
	b.pos += int64(n)
	return n, err
}

func (b *memBackend) Seek(offset int64, whence int) (int64, error) {
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = b.pos
	case io.SeekEnd:
		base = b.img.size
	default:
		return 0, fmt.Errorf("image: bad whence %d", whence)
	}
	if base+offset < 0 {
		return 0, errors.New("image: seek before start")
	}
	b.pos = base + offset
	return b.pos, nil
}

// memInfo is the FileInfo of an in-memory image.
type memInfo struct{ size int64 }

func (i memInfo) Name() string       { return "seed" }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o600 }
func (i memInfo) ModTime() time.Time { return fixedTime() }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
