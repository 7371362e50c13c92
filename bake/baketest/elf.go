// Package baketest makes test inputs for code that calls package bake:
// minimal ELF files that pass (or, on purpose, fail) bake's agent check,
// built byte by byte so tests need no compiler.
package baketest

import (
	"debug/elf"
	"encoding/binary"
)

// ELF describes a minimal 64-bit little-endian ELF file: a header, its
// program headers and one loadable segment holding everything.
type ELF struct {
	Machine elf.Machine // EM_X86_64 when zero
	Type    elf.Type    // ET_EXEC when zero
	Class   elf.Class   // ELFCLASS64 when zero; ELFCLASS32 only flips the ident byte
	Interp  string      // adds a PT_INTERP naming this loader
	Needed  int         // adds a PT_DYNAMIC with this many DT_NEEDED entries
	PIE     bool        // adds a PT_DYNAMIC with DT_FLAGS_1 = DF_1_PIE
	NoExec  bool        // the loadable segment is not executable
}

// StaticELF is a minimal static executable for a Go arch name (amd64,
// arm64): what bake accepts as an agent.
func StaticELF(arch string) []byte {
	m := elf.EM_X86_64
	if arch == "arm64" {
		m = elf.EM_AARCH64
	}
	return ELF{Machine: m}.Bytes()
}

// Bytes lays the file out.
func (e ELF) Bytes() []byte {
	const (
		ehdrSize = 64
		phdrSize = 56
		base     = 0x400000
	)
	le := binary.LittleEndian
	var dyn []byte
	for range e.Needed {
		dyn = le.AppendUint64(dyn, uint64(elf.DT_NEEDED))
		dyn = le.AppendUint64(dyn, 1)
	}
	if e.PIE {
		dyn = le.AppendUint64(dyn, uint64(elf.DT_FLAGS_1))
		dyn = le.AppendUint64(dyn, uint64(elf.DF_1_PIE))
	}
	if dyn != nil {
		dyn = append(dyn, make([]byte, 16)...) // DT_NULL
	}
	nph := 1
	if e.Interp != "" {
		nph++
	}
	if dyn != nil {
		nph++
	}
	off := ehdrSize + nph*phdrSize
	interpOff := off
	interp := []byte(e.Interp)
	if e.Interp != "" {
		interp = append(interp, 0)
		off += len(interp)
	}
	dynOff := (off + 7) &^ 7
	off = dynOff + len(dyn)
	codeOff := off
	code := []byte{0xf4, 0xf4, 0xf4, 0xf4} // hlt; never run, only checked
	total := codeOff + len(code)

	b := make([]byte, 0, total)
	class := e.Class
	if class == 0 {
		class = elf.ELFCLASS64
	}
	typ, machine := e.Type, e.Machine
	if typ == 0 {
		typ = elf.ET_EXEC
	}
	if machine == 0 {
		machine = elf.EM_X86_64
	}
	b = append(b, 0x7f, 'E', 'L', 'F', byte(class), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), byte(elf.ELFOSABI_NONE))
	b = append(b, make([]byte, 8)...)
	b = le.AppendUint16(b, uint16(typ))
	b = le.AppendUint16(b, uint16(machine))
	b = le.AppendUint32(b, uint32(elf.EV_CURRENT))
	b = le.AppendUint64(b, uint64(base+codeOff)) // e_entry
	b = le.AppendUint64(b, ehdrSize)             // e_phoff
	b = le.AppendUint64(b, 0)                    // e_shoff: no sections, like a stripped binary
	b = le.AppendUint32(b, 0)                    // e_flags
	b = le.AppendUint16(b, ehdrSize)
	b = le.AppendUint16(b, phdrSize)
	b = le.AppendUint16(b, uint16(nph))
	b = le.AppendUint16(b, 64) // e_shentsize
	b = le.AppendUint16(b, 0)  // e_shnum
	b = le.AppendUint16(b, 0)  // e_shstrndx
	phdr := func(typ elf.ProgType, flags elf.ProgFlag, off, size int) {
		b = le.AppendUint32(b, uint32(typ))
		b = le.AppendUint32(b, uint32(flags))
		b = le.AppendUint64(b, uint64(off))
		b = le.AppendUint64(b, uint64(base+off))
		b = le.AppendUint64(b, uint64(base+off))
		b = le.AppendUint64(b, uint64(size))
		b = le.AppendUint64(b, uint64(size))
		b = le.AppendUint64(b, 8)
	}
	flags := elf.PF_R | elf.PF_X
	if e.NoExec {
		flags = elf.PF_R
	}
	phdr(elf.PT_LOAD, flags, 0, total)
	if e.Interp != "" {
		phdr(elf.PT_INTERP, elf.PF_R, interpOff, len(interp))
	}
	if dyn != nil {
		phdr(elf.PT_DYNAMIC, elf.PF_R, dynOff, len(dyn))
	}
	b = append(b, interp...)
	b = append(b, make([]byte, dynOff-len(b))...)
	b = append(b, dyn...)
	b = append(b, code...)
	return b
}
