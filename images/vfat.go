package images

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// FAT32 parameters. go-diskfs v1.9.4 picks 512-byte clusters up to 260 MB,
// 32 reserved sectors and 2 FATs; the sizing below relies on those.
const (
	fatSector        = 512
	fatReserved      = 32
	fatMaxSmallBytes = 260 << 20 // above this go-diskfs switches to 4 KiB clusters
	// fatMinClusters is the FAT32 minimum (65525, from Microsoft's
	// specification) plus a margin of 16, as that specification advises,
	// because implementations disagree on the exact boundary. Below it,
	// mtools and other readers that derive the FAT type from the cluster
	// count (as the specification says they must) treat the volume as
	// FAT16 and fail ("Error reading FAT"), and fsck.fat warns.
	fatMinClusters = 65525 + 16
	fatLabel       = "CIDATA"
	fatEOC         = 0x0ffffff8 // entries >= this end a cluster chain
	fatEntryMask   = 0x0fffffff
)

// fatLayout mirrors go-diskfs v1.9.4's FAT32 geometry for a volume of
// totalSectors 512-byte sectors with one sector per cluster.
func fatLayout(totalSectors uint32) (sectorsPerFat, clusters uint32) {
	// go-diskfs: ceil(4*(T-R) / (bytesPerCluster + 8)).
	sectorsPerFat = (4*(totalSectors-fatReserved) + fatSector + 8 - 1) / (fatSector + 8)
	clusters = totalSectors - fatReserved - 2*sectorsPerFat
	return sectorsPerFat, clusters
}

// fatSizeFor returns the image size in bytes for files.
//
// Two go-diskfs v1.9.4 problems are avoided here rather than patched:
//
//   - it formats FAT32 at any size, but a FAT32 volume needs at least 65525
//     clusters; smaller ones are read as FAT16 by mtools and flagged by
//     fsck.fat. So the volume gets at least fatMinClusters clusters, about
//     33 MiB, which costs little because the image is sparse (only the
//     FATs and the data are written).
//   - its sectors-per-FAT formula ignores the two reserved FAT entries, so
//     for some sizes (those with (T-32) mod 130 of 0 or 129, e.g. exactly
//     64 MiB) the FAT is two entries short of the cluster count and
//     fsck.fat reports "Filesystem has N clusters but only space for N-2
//     FAT entries". Such sizes are skipped.
func fatSizeFor(files []File) (int64, error) {
	// Data clusters: each file rounded up to whole clusters.
	need := uint64(0)
	// Root directory: the volume label entry, each file's 8.3 entry plus
	// one long-name slot per 13 characters, and the end marker.
	rootBytes := uint64(32 + 32)
	for _, f := range files {
		need += (uint64(len(f.Data)) + fatSector - 1) / fatSector
		rootBytes += 32 * (1 + (uint64(len(f.Name))+12)/13)
	}
	need += (rootBytes + fatSector - 1) / fatSector
	// Slack for go-diskfs allocating a cluster more than strictly needed.
	need += 16 + uint64(len(files))
	if need < fatMinClusters {
		need = fatMinClusters
	}
	// Smallest T with enough clusters, from clusters ~= (T-R)*128/130.
	t := uint64(fatReserved) + need*130/128
	for ; ; t++ {
		if t*fatSector > fatMaxSmallBytes {
			return 0, fmt.Errorf("seed content needs %d clusters, more than a %d MB FAT32 seed holds; use the iso format", need, fatMaxSmallBytes>>20)
		}
		spf, clusters := fatLayout(uint32(t))
		if uint64(clusters) >= need && uint64(spf)*fatSector/4 >= uint64(clusters)+2 {
			return int64(t) * fatSector, nil
		}
	}
}

// buildVFAT writes a FAT32 seed labelled CIDATA into img.
//
// FAT has no permission bits, so File.Mode is not recorded: the mount
// options on the VPS decide (Linux's default makes files 0755 for root).
func buildVFAT(img *Image, files []File) error {
	size, err := fatSizeFor(files)
	if err != nil {
		return err
	}
	// The image is sparse; go-diskfs writes only what it uses.
	img.truncate(size)
	// reproducible=true makes go-diskfs use a zero volume serial instead
	// of one derived from the clock.
	fsys, err := fat32.Create(&memBackend{img: img}, size, 0, fatSector, fatLabel, true)
	if err != nil {
		return fmt.Errorf("create FAT32 filesystem: %w", err)
	}
	for _, f := range files {
		w, err := fsys.OpenFile("/"+f.Name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("create %s: %w", f.Name, err)
		}
		n, err := w.Write(f.Data)
		if err == nil && n != len(f.Data) {
			err = io.ErrShortWrite
		}
		if err != nil {
			_ = w.Close()
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("close %s: %w", f.Name, err)
		}
	}
	if err := fsys.Close(); err != nil {
		return fmt.Errorf("close FAT32 filesystem: %w", err)
	}
	if err := normalizeFAT(img); err != nil {
		return fmt.Errorf("normalize FAT32: %w", err)
	}
	return nil
}

// fatImage is what the FAT normalizer needs from an image.
type fatImage interface {
	io.ReaderAt
	io.WriterAt
}

// normalizeFAT finishes a go-diskfs FAT32 volume in place:
//
//   - checks the geometry it actually wrote (so a future change of
//     go-diskfs's formula fails loudly instead of shipping a volume whose
//     FAT is shorter than its cluster count);
//   - sets every timestamp of the root directory's entries (files and the
//     volume label) to fixedTime; go-diskfs takes them from the clock
//     (or SOURCE_DATE_EPOCH, which a library must not depend on);
//   - checks that every file's cluster chain matches its size, and frees
//     the cluster go-diskfs leaves allocated to an empty file;
//   - fills in the FSInfo free-cluster count and next-free hint (primary
//     and backup), which go-diskfs leaves "unknown" and fsck.fat reports.
//
// Seeds are flat, so the root directory is the only directory.
func normalizeFAT(img fatImage) error {
	bs := make([]byte, fatSector)
	if _, err := img.ReadAt(bs, 0); err != nil {
		return fmt.Errorf("read boot sector: %w", err)
	}
	bps := uint32(binary.LittleEndian.Uint16(bs[11:]))
	spc := uint32(bs[13])
	reserved := uint32(binary.LittleEndian.Uint16(bs[14:]))
	nfats := uint32(bs[16])
	total := binary.LittleEndian.Uint32(bs[32:])
	spf := binary.LittleEndian.Uint32(bs[36:])
	rootClus := binary.LittleEndian.Uint32(bs[44:])
	fsinfo := uint32(binary.LittleEndian.Uint16(bs[48:]))
	backup := uint32(binary.LittleEndian.Uint16(bs[50:]))
	if bps != fatSector || spc != 1 || nfats != 2 {
		return fmt.Errorf("unexpected geometry: %d bytes/sector, %d sectors/cluster, %d FATs", bps, spc, nfats)
	}
	clusters := (total - reserved - nfats*spf) / spc
	if clusters < fatMinClusters-16 {
		return fmt.Errorf("%d clusters is below the FAT32 minimum of 65525", clusters)
	}
	if spf*bps/4 < clusters+2 {
		return fmt.Errorf("FAT holds %d entries, fewer than %d clusters + 2", spf*bps/4, clusters)
	}

	fatOff := int64(reserved) * int64(bps)
	fat := make([]byte, spf*bps)
	if _, err := img.ReadAt(fat, fatOff); err != nil {
		return fmt.Errorf("read FAT: %w", err)
	}
	entry := func(c uint32) uint32 { return binary.LittleEndian.Uint32(fat[4*c:]) & fatEntryMask }
	setEntry := func(c, v uint32) {
		// The top four bits of a FAT32 entry are reserved and kept.
		old := binary.LittleEndian.Uint32(fat[4*c:])
		binary.LittleEndian.PutUint32(fat[4*c:], old&^fatEntryMask|v&fatEntryMask)
	}
	valid := func(c uint32) bool { return c >= 2 && c < clusters+2 }
	// chain follows a cluster chain and returns its clusters.
	chain := func(first uint32) ([]uint32, error) {
		var out []uint32
		for c := first; ; c = entry(c) {
			if !valid(c) || uint32(len(out)) > clusters {
				return nil, fmt.Errorf("cluster chain from %d broken at %d", first, c)
			}
			out = append(out, c)
			if entry(c) >= fatEOC {
				return out, nil
			}
		}
	}

	dataStart := int64(reserved+nfats*spf) * int64(bps)
	clusterBytes := spc * bps
	clusterOff := func(c uint32) int64 { return dataStart + int64(c-2)*int64(clusterBytes) }
	rootChain, err := chain(rootClus)
	if err != nil {
		return fmt.Errorf("root directory: %w", err)
	}
	date, tim := fatDateTime()
	fatChanged := false
	for _, c := range rootChain {
		blk := make([]byte, clusterBytes)
		if _, err := img.ReadAt(blk, clusterOff(c)); err != nil {
			return fmt.Errorf("read root directory cluster %d: %w", c, err)
		}
		end := false
		for o := 0; o+32 <= len(blk); o += 32 {
			d := blk[o : o+32]
			if d[0] == 0x00 {
				end = true // no entries follow
				break
			}
			attr := d[11]
			if d[0] == 0xE5 || attr == 0x0F {
				continue // deleted entry or long-name slot: no times
			}
			d[13] = 0 // creation time, 10 ms units
			binary.LittleEndian.PutUint16(d[14:], tim)
			binary.LittleEndian.PutUint16(d[16:], date)
			binary.LittleEndian.PutUint16(d[18:], date) // last access date
			binary.LittleEndian.PutUint16(d[22:], tim)
			binary.LittleEndian.PutUint16(d[24:], date)
			if attr&0x18 != 0 {
				continue // volume label or directory: no data to check
			}
			first := uint32(binary.LittleEndian.Uint16(d[20:]))<<16 | uint32(binary.LittleEndian.Uint16(d[26:]))
			size := binary.LittleEndian.Uint32(d[28:])
			if size == 0 {
				// go-diskfs allocates a cluster when it creates a file
				// and keeps it when nothing is written; fsck.fat then
				// reports "File size is 0 bytes, cluster chain length
				// is > 0 bytes". An empty file owns no cluster.
				if first != 0 {
					cl, err := chain(first)
					if err != nil {
						return fmt.Errorf("empty file at root offset %d: %w", o, err)
					}
					for _, x := range cl {
						setEntry(x, 0)
					}
					binary.LittleEndian.PutUint16(d[20:], 0)
					binary.LittleEndian.PutUint16(d[26:], 0)
					fatChanged = true
				}
				continue
			}
			// A file's chain must cover its size exactly, or readers
			// see a truncated or corrupt file.
			cl, err := chain(first)
			if err != nil {
				return fmt.Errorf("file at root offset %d: %w", o, err)
			}
			if want := (size + clusterBytes - 1) / clusterBytes; uint32(len(cl)) != want {
				return fmt.Errorf("file at root offset %d: %d bytes in a chain of %d clusters, want %d", o, size, len(cl), want)
			}
		}
		if _, err := img.WriteAt(blk, clusterOff(c)); err != nil {
			return fmt.Errorf("write root directory cluster %d: %w", c, err)
		}
		if end {
			break
		}
	}
	if fatChanged {
		for i := uint32(0); i < nfats; i++ {
			if _, err := img.WriteAt(fat, fatOff+int64(i)*int64(len(fat))); err != nil {
				return fmt.Errorf("write FAT %d: %w", i, err)
			}
		}
	}

	free, nextFree := uint32(0), uint32(0xffffffff)
	for c := uint32(2); c < clusters+2; c++ {
		if entry(c) == 0 {
			if free == 0 {
				nextFree = c
			}
			free++
		}
	}
	if fsinfo == 0 {
		return errors.New("boot sector names no FSInfo sector")
	}
	if err := setFSInfo(img, int64(fsinfo)*int64(bps), free, nextFree); err != nil {
		return err
	}
	// go-diskfs keeps a backup FSInfo right after the backup boot sector.
	if backup != 0 {
		if err := setFSInfo(img, int64(backup+fsinfo)*int64(bps), free, nextFree); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	return nil
}

// setFSInfo fills the free-cluster count and next-free hint of the FSInfo
// sector at off, after checking its signatures.
func setFSInfo(img fatImage, off int64, free, nextFree uint32) error {
	s := make([]byte, fatSector)
	if _, err := img.ReadAt(s, off); err != nil {
		return fmt.Errorf("read FSInfo sector at %d: %w", off, err)
	}
	if binary.LittleEndian.Uint32(s[0:]) != 0x41615252 || binary.LittleEndian.Uint32(s[484:]) != 0x61417272 {
		return errors.New("FSInfo sector has bad signatures")
	}
	binary.LittleEndian.PutUint32(s[488:], free)
	binary.LittleEndian.PutUint32(s[492:], nextFree)
	if _, err := img.WriteAt(s, off); err != nil {
		return fmt.Errorf("write FSInfo sector at %d: %w", off, err)
	}
	return nil
}

// fatDateTime is fixedTime in FAT's date and time encoding (local time
// without zone; we store UTC).
func fatDateTime() (date, tim uint16) {
	t := fixedTime()
	date = uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	tim = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	return date, tim
}
