package images

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// ISO9660 (ECMA-119) layout constants used by the normalizer.
const (
	isoSystemAreaBlocks = 16 // volume descriptors start at block 16
	isoMaxDescriptors   = 64 // a sane bound on the descriptor set
	isoMaxCEChain       = 64 // a sane bound on one record's SUSP continuations

	vdTypePrimary       = 1
	vdTypeSupplementary = 2
	vdTypeTerminator    = 255

	// Offsets inside a volume descriptor (ECMA-119 8.4).
	vdOffVolumeSpaceSize = 80
	vdOffBlockSize       = 128
	vdOffRootRecord      = 156
	vdOffCreation        = 813
	vdOffModification    = 830
	vdOffExpiration      = 847
	vdOffEffective       = 864

	// Offsets inside a directory record (ECMA-119 9.1).
	drOffExtent  = 2
	drOffSize    = 10
	drOffDate    = 18
	drOffFlags   = 25
	drOffNameLen = 32
	drOffName    = 33
	drFlagDir    = 0x02
)

// isoRecordDate is fixedTime in the 7-byte directory record format
// (ECMA-119 9.1.5): years since 1900, month, day, hour, minute, second,
// offset from GMT in 15-minute units.
func isoRecordDate() [7]byte {
	t := fixedTime()
	return [7]byte{byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
}

// isoVolumeDate formats t in the 17-byte volume descriptor format
// (ECMA-119 8.4.26.1): 16 ASCII digits then the GMT offset byte.
func isoVolumeDate() [17]byte {
	t := fixedTime()
	var b [17]byte
	copy(b[:16], fmt.Sprintf("%04d%02d%02d%02d%02d%02d%02d", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e7))
	return b
}

// isoDateUnspecified is ECMA-119's "not specified" volume date: sixteen
// '0' digits and a zero offset.
func isoDateUnspecified() [17]byte {
	var b [17]byte
	copy(b[:16], bytes.Repeat([]byte{'0'}, 16))
	return b
}

// normalizeISO rewrites, in place, every field of a finished ISO image that
// go-diskfs v1.9.4 fills from the clock, the inodes or the builder's
// identity, so the same files always give the same bytes:
//
//   - volume descriptor creation/modification dates -> fixedTime;
//     expiration/effective dates -> "not specified" (go-diskfs sets the
//     expiration to the build time, i.e. declares the volume obsolete at
//     once, which is wrong as well as non-reproducible);
//   - the recording date of every directory record (from inode mtimes,
//     in the builder's local time zone);
//   - every Rock Ridge TF entry (mtime, atime, ctime of the workspace
//     inodes; ctime cannot be set from user space at all);
//   - the uid/gid of every Rock Ridge PX entry -> 0, so the files are
//     owned by root on the VPS whoever built the seed;
//   - the identifier fields of the primary volume descriptor, padded with
//     NULs by go-diskfs, get the space padding ECMA-119 requires.
//
// It walks the actual on-disk structures (descriptor set, directory
// extents, System Use areas and their CE continuation areas) rather than
// trusting go-diskfs's layout, and fails on anything malformed. It also
// makes the file length match the volume space size.
func normalizeISO(img *Image) error {
	volBlocks, _, err := normalizeISOStructures(img)
	if err != nil {
		return err
	}
	want := int64(volBlocks) * isoBlockSize
	if img.Size() > want {
		return fmt.Errorf("image is %d bytes but its volume space is only %d", img.Size(), want)
	}
	if img.Size() < want {
		img.truncate(want)
	}
	return nil
}

// isoImage is what the normalizer needs from an image.
type isoImage interface {
	io.ReaderAt
	io.WriterAt
}

// isoStats counts what a normalization pass rewrote, so tests can tell
// that every kind of structure was really reached.
type isoStats struct {
	records, tf, px, ce int
}

// isoWalker carries the state of one normalization pass.
type isoWalker struct {
	img     isoImage
	visited map[uint32]bool // directory extents already normalized
	stats   isoStats
}

// normalizeISOStructures does the rewriting and returns the primary
// volume's size in blocks.
func normalizeISOStructures(img isoImage) (uint32, isoStats, error) {
	w := &isoWalker{img: img, visited: map[uint32]bool{}}
	type root struct {
		extent, size uint32
		primary      bool
	}
	var (
		roots     []root
		volBlocks uint32
		sawPVD    bool
	)
	created, unspecified := isoVolumeDate(), isoDateUnspecified()
	recDate := isoRecordDate()
	for i := 0; ; i++ {
		if i == isoMaxDescriptors {
			return 0, isoStats{}, errors.New("no volume descriptor set terminator found")
		}
		off := int64(isoSystemAreaBlocks+i) * isoBlockSize
		vd := make([]byte, isoBlockSize)
		if _, err := img.ReadAt(vd, off); err != nil {
			return 0, isoStats{}, fmt.Errorf("read volume descriptor %d: %w", i, err)
		}
		if string(vd[1:6]) != "CD001" {
			return 0, isoStats{}, fmt.Errorf("volume descriptor %d has no CD001 identifier", i)
		}
		typ := vd[0]
		if typ == vdTypeTerminator {
			break
		}
		if typ != vdTypePrimary && typ != vdTypeSupplementary {
			continue // boot records carry no dates
		}
		if bs := binary.LittleEndian.Uint16(vd[vdOffBlockSize:]); bs != isoBlockSize {
			return 0, isoStats{}, fmt.Errorf("volume descriptor %d: logical block size %d, expected %d", i, bs, isoBlockSize)
		}
		if typ == vdTypePrimary {
			padIdentifiers(vd)
		}
		copy(vd[vdOffCreation:], created[:])
		copy(vd[vdOffModification:], created[:])
		copy(vd[vdOffExpiration:], unspecified[:])
		copy(vd[vdOffEffective:], unspecified[:])
		rr := vd[vdOffRootRecord : vdOffRootRecord+34]
		copy(rr[drOffDate:], recDate[:])
		roots = append(roots, root{
			extent:  binary.LittleEndian.Uint32(rr[drOffExtent:]),
			size:    binary.LittleEndian.Uint32(rr[drOffSize:]),
			primary: typ == vdTypePrimary,
		})
		if typ == vdTypePrimary {
			sawPVD = true
			volBlocks = binary.LittleEndian.Uint32(vd[vdOffVolumeSpaceSize:])
		}
		if _, err := img.WriteAt(vd, off); err != nil {
			return 0, isoStats{}, fmt.Errorf("write volume descriptor %d: %w", i, err)
		}
	}
	if !sawPVD {
		return 0, isoStats{}, errors.New("no primary volume descriptor")
	}
	for _, r := range roots {
		// Only the primary tree carries SUSP/Rock Ridge; a Joliet tree
		// (supplementary descriptor) has plain records.
		skip := -1
		if r.primary {
			var err error
			if skip, err = w.suspSkip(r.extent); err != nil {
				return 0, isoStats{}, err
			}
		}
		if err := w.walkDir(r.extent, r.size, skip); err != nil {
			return 0, isoStats{}, err
		}
	}
	return volBlocks, w.stats, nil
}

// pvdTextFields are the [start, end) byte ranges of the primary volume
// descriptor's identifier fields (ECMA-119 8.4.5-8.4.25).
var pvdTextFields = [...][2]int{
	{8, 40}, {40, 72}, {190, 318}, {318, 446}, {446, 574}, {574, 702},
	{702, 739}, {739, 776}, {776, 813},
}

// padIdentifiers replaces the trailing NUL padding go-diskfs writes in the
// identifier fields with the spaces ECMA-119 requires ("cidata\0\0..."
// would otherwise be the volume identifier read by strict readers;
// blkid happens to trim both).
func padIdentifiers(vd []byte) {
	for _, r := range pvdTextFields {
		field := vd[r[0]:r[1]]
		end := len(field)
		for end > 0 && field[end-1] == 0 {
			end--
		}
		for i := end; i < len(field); i++ {
			field[i] = ' '
		}
	}
}

// systemUse returns the System Use area of a directory record (ECMA-119
// 9.1.13): after the name, plus a pad byte when the name length is even.
func systemUse(rec []byte) []byte {
	nameLen := int(rec[drOffNameLen])
	start := drOffName + nameLen
	if nameLen%2 == 0 {
		start++
	}
	if start >= len(rec) {
		return nil
	}
	return rec[start:]
}

// suspSkip reads the root directory's first record and returns the SUSP
// LEN_SKP from its SP entry, or -1 if the volume does not use SUSP.
func (w *isoWalker) suspSkip(rootExtent uint32) (int, error) {
	blk := make([]byte, isoBlockSize)
	if _, err := w.img.ReadAt(blk, int64(rootExtent)*isoBlockSize); err != nil {
		return 0, fmt.Errorf("read root directory: %w", err)
	}
	l := int(blk[0])
	if l < drOffName+1 {
		return 0, errors.New("root directory has no '.' record")
	}
	su := systemUse(blk[:l])
	// SUSP 5.3: "SP", length 7, version 1, check bytes BE EF, LEN_SKP.
	if len(su) >= 7 && su[0] == 'S' && su[1] == 'P' && su[2] == 7 && su[4] == 0xBE && su[5] == 0xEF {
		return int(su[6]), nil
	}
	return -1, nil
}

// walkDir normalizes every record of one directory extent and recurses
// into subdirectories. skip is the SUSP LEN_SKP, or -1 without SUSP.
func (w *isoWalker) walkDir(extent, size uint32, skip int) error {
	if w.visited[extent] {
		return nil
	}
	w.visited[extent] = true
	if size == 0 || size > 1<<24 {
		return fmt.Errorf("directory at block %d has implausible size %d", extent, size)
	}
	// go-diskfs records the exact byte length of a directory rather than
	// whole blocks; read and rewrite the blocks it occupies.
	buf := make([]byte, (size+isoBlockSize-1)/isoBlockSize*isoBlockSize)
	off := int64(extent) * isoBlockSize
	if _, err := w.img.ReadAt(buf, off); err != nil {
		return fmt.Errorf("read directory at block %d: %w", extent, err)
	}
	recDate := isoRecordDate()
	type child struct{ extent, size uint32 }
	var children []child
	for pos := 0; pos < len(buf); {
		l := int(buf[pos])
		if l == 0 {
			// Records never span blocks: a zero length means padding
			// up to the next block.
			pos = (pos/isoBlockSize + 1) * isoBlockSize
			continue
		}
		if l < drOffName+1 || pos+l > len(buf) || pos/isoBlockSize != (pos+l-1)/isoBlockSize {
			return fmt.Errorf("directory at block %d: malformed record at offset %d", extent, pos)
		}
		rec := buf[pos : pos+l]
		copy(rec[drOffDate:], recDate[:])
		w.stats.records++
		if skip >= 0 {
			su := systemUse(rec)
			if len(su) > skip {
				if err := w.fixSUSP(su[skip:], 0); err != nil {
					return fmt.Errorf("directory at block %d, record at offset %d: %w", extent, pos, err)
				}
			}
		}
		nameLen := int(rec[drOffNameLen])
		isDot := nameLen == 1 && (rec[drOffName] == 0 || rec[drOffName] == 1)
		if rec[drOffFlags]&drFlagDir != 0 && !isDot {
			children = append(children, child{
				extent: binary.LittleEndian.Uint32(rec[drOffExtent:]),
				size:   binary.LittleEndian.Uint32(rec[drOffSize:]),
			})
		}
		pos += l
	}
	if _, err := w.img.WriteAt(buf, off); err != nil {
		return fmt.Errorf("write directory at block %d: %w", extent, err)
	}
	for _, c := range children {
		if err := w.walkDir(c.extent, c.size, skip); err != nil {
			return err
		}
	}
	return nil
}

// fixSUSP rewrites the TF and PX entries of one System Use area (or
// continuation area) in place and follows its CE entry, if any.
func (w *isoWalker) fixSUSP(area []byte, depth int) error {
	if depth > isoMaxCEChain {
		return errors.New("SUSP continuation chain too long")
	}
	var ce []byte
	for len(area) >= 4 {
		sig, l := string(area[:2]), int(area[2])
		if area[0] == 0 {
			break // padding after the last entry
		}
		if l < 4 || l > len(area) {
			return fmt.Errorf("SUSP entry %q has bad length %d", sig, l)
		}
		e := area[:l]
		switch sig {
		case "ST":
			return w.followCE(ce, depth) // SUSP 5.4: terminates this area
		case "CE":
			if l != 28 {
				return fmt.Errorf("SUSP CE entry has length %d, expected 28", l)
			}
			ce = e
		case "TF":
			if err := fixTF(e); err != nil {
				return err
			}
			w.stats.tf++
		case "PX":
			// RRIP 4.1.1: mode, links, uid, gid as both-endian 32-bit
			// fields at 4, 12, 20, 28 (each 8 bytes).
			if l != 36 && l != 44 {
				return fmt.Errorf("Rock Ridge PX entry has length %d", l)
			}
			clear(e[20:36])
			w.stats.px++
		}
		area = area[l:]
	}
	return w.followCE(ce, depth)
}

// followCE normalizes the continuation area a CE entry points to (SUSP
// 5.1: block, offset and length, each both-endian 32-bit).
func (w *isoWalker) followCE(ce []byte, depth int) error {
	if ce == nil {
		return nil
	}
	block := binary.LittleEndian.Uint32(ce[4:])
	offset := binary.LittleEndian.Uint32(ce[12:])
	length := binary.LittleEndian.Uint32(ce[20:])
	if length == 0 {
		return nil
	}
	w.stats.ce++
	if uint64(offset)+uint64(length) > isoBlockSize {
		return fmt.Errorf("SUSP continuation area at block %d overruns its block", block)
	}
	blk := make([]byte, isoBlockSize)
	at := int64(block) * isoBlockSize
	if _, err := w.img.ReadAt(blk, at); err != nil {
		return fmt.Errorf("read SUSP continuation block %d: %w", block, err)
	}
	if err := w.fixSUSP(blk[offset:offset+length], depth+1); err != nil {
		return fmt.Errorf("continuation block %d: %w", block, err)
	}
	if _, err := w.img.WriteAt(blk, at); err != nil {
		return fmt.Errorf("write SUSP continuation block %d: %w", block, err)
	}
	return nil
}

// fixTF rewrites every timestamp of a Rock Ridge TF entry (RRIP 4.1.6):
// a flags byte says which stamps follow and whether they use the 17-byte
// volume format (bit 7) or the 7-byte record format.
func fixTF(e []byte) error {
	flags := e[4]
	n := bits.OnesCount8(flags & 0x7f)
	size := 7
	if flags&0x80 != 0 {
		size = 17
	}
	if 5+n*size > len(e) {
		return fmt.Errorf("Rock Ridge TF entry of %d bytes too short for %d stamps", len(e), n)
	}
	short, long := isoRecordDate(), isoVolumeDate()
	for i := 0; i < n; i++ {
		dst := e[5+i*size : 5+(i+1)*size]
		if size == 7 {
			copy(dst, short[:])
		} else {
			copy(dst, long[:])
		}
	}
	return nil
}
