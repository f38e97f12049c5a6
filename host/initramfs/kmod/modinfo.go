// Package kmod works out which kernel module files an initrd must carry and
// in which order the init must load them, from one kernel's module tree
// (lib/modules/<version>) as it comes out of a kernel package.
//
// Distribution packages often ship no modules.dep: depmod writes it at
// install time (Debian's postinst does so), and the build host may have no
// depmod at all. So dependencies come from modules.dep when the tree has one,
// and otherwise from each module's own metadata: the NUL-separated
// key=value strings of its ELF `.modinfo` section (`depends=`, `softdep=`,
// `vermagic=`, `alias=`). Only the modules actually visited are parsed.
//
// The result is a Plan: the modules in load order (hard dependencies first,
// `softdep pre:` modules before the module that wants them), each one's
// decompressed bytes (a module shipped as .ko.xz, .ko.zst or .ko.gz is
// stored as a plain .ko so the init can hand it to finit_module on any
// kernel, whether or not it was built with CONFIG_MODULE_DECOMPRESS), plus a
// depmod-style modules.dep for the initrd. Everything is deterministic: the
// same tree and request give the same plan.
//
// Module names treat '-' and '_' as the same character, as the kernel does;
// Normalize gives the canonical (underscore) form.
package kmod

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sealroot/sealroot/internal/textclip"
)

// MaxModinfoSize bounds the .modinfo section accepted from a module file.
// Real sections are a few KiB; the bound keeps a corrupt file from making
// the builder allocate without limit.
const MaxModinfoSize = 1 << 20

// maxNameLen is the kernel's MODULE_NAME_LEN minus the terminating NUL.
const maxNameLen = 64 - 8 - 1

// Modinfo is what the builder needs from a module's .modinfo section.
type Modinfo struct {
	// Name is the module's own name= entry, normalized; empty when absent
	// (old kernels did not record it).
	Name string
	// Depends lists the hard dependencies (depends=), normalized, in the
	// order the module records them.
	Depends []string
	// SoftPre and SoftPost list the soft dependencies (softdep=pre: ...
	// post: ...) as written: each may be a module name or an alias.
	SoftPre, SoftPost []string
	// Vermagic is the vermagic= string; its first word is the kernel
	// release the module was built for.
	Vermagic string
	// Aliases lists the alias= entries verbatim (they may hold wildcards).
	Aliases []string
	// Warnings describe entries that were skipped as malformed.
	Warnings []string
}

// Release returns the kernel release named by the vermagic string (its first
// word), or "" when there is none.
func (m Modinfo) Release() string {
	f := strings.Fields(m.Vermagic)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// Normalize returns a module name in canonical form: '-' replaced by '_'.
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// validName reports whether s can be a module name: 1 to 55 bytes of
// letters, digits, '_' and '-'. Anything else (a '/', '.', space or control
// byte) is rejected because names become file lookups.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ParseModinfo parses the contents of a .modinfo section: key=value strings
// separated (and possibly padded) by NUL bytes. Keys may repeat; list values
// accumulate. Keys the builder does not use are ignored. Names in depends=
// and softdep= must be valid module names.
func ParseModinfo(section []byte) (Modinfo, error) {
	var m Modinfo
	if len(section) > MaxModinfoSize {
		return m, fmt.Errorf("modinfo section of %d bytes exceeds %d", len(section), MaxModinfoSize)
	}
	for _, entry := range bytes.Split(section, []byte{0}) {
		if len(entry) == 0 {
			continue // padding between entries
		}
		key, value, ok := strings.Cut(string(entry), "=")
		if !ok || key == "" {
			return Modinfo{}, fmt.Errorf("modinfo entry %q is not key=value", truncate(string(entry)))
		}
		switch key {
		case "name":
			if !validName(value) {
				return Modinfo{}, fmt.Errorf("modinfo name %q is not a module name", truncate(value))
			}
			m.Name = Normalize(value)
		case "depends":
			if value == "" {
				continue
			}
			for _, d := range strings.Split(value, ",") {
				if !validName(d) {
					return Modinfo{}, fmt.Errorf("modinfo depends entry %q is not a module name", truncate(d))
				}
				m.Depends = append(m.Depends, Normalize(d))
			}
		case "softdep":
			pre, post, ignored := parseSoftdep(value)
			m.SoftPre = append(m.SoftPre, pre...)
			m.SoftPost = append(m.SoftPost, post...)
			for _, tok := range ignored {
				m.Warnings = append(m.Warnings, fmt.Sprintf("softdep %q: %q is not after pre: or post:, or not a module name; ignored", truncate(value), tok))
			}
		case "vermagic":
			m.Vermagic = value
		case "alias":
			m.Aliases = append(m.Aliases, value)
		}
	}
	return m, nil
}

// parseSoftdep parses "pre: a b post: c" (modprobe.d syntax); "pre:a"
// without the space is accepted too. Names are returned as written, since a
// soft dependency may be an alias ("crypto-crc32c"), where '-' and '_' are
// not interchangeable. Tokens that come before any pre: or post: (some
// kernels ship "softdep=gcm") or that cannot be names are skipped and
// reported in ignored, as modprobe skips them.
func parseSoftdep(value string) (pre, post, ignored []string) {
	var cur *[]string
	for _, tok := range strings.Fields(value) {
		for {
			switch {
			case strings.HasPrefix(tok, "pre:"):
				cur, tok = &pre, tok[len("pre:"):]
				continue
			case strings.HasPrefix(tok, "post:"):
				cur, tok = &post, tok[len("post:"):]
				continue
			}
			break
		}
		if tok == "" {
			continue
		}
		if cur == nil || !validName(tok) {
			ignored = append(ignored, truncate(tok))
			continue
		}
		*cur = append(*cur, tok)
	}
	return pre, post, ignored
}

// ReadModinfo reads and parses the .modinfo section of an (uncompressed)
// module ELF image.
func ReadModinfo(r io.ReaderAt) (Modinfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return Modinfo{}, fmt.Errorf("reading module ELF: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_REL {
		return Modinfo{}, fmt.Errorf("module ELF has type %v, want ET_REL", f.Type)
	}
	s := f.Section(".modinfo")
	if s == nil {
		return Modinfo{}, errors.New("module ELF has no .modinfo section")
	}
	if s.Type == elf.SHT_NOBITS {
		return Modinfo{}, errors.New("module .modinfo section has no data")
	}
	if s.Size > MaxModinfoSize {
		return Modinfo{}, fmt.Errorf("module .modinfo section of %d bytes exceeds %d", s.Size, MaxModinfoSize)
	}
	data, err := s.Data()
	if err != nil {
		return Modinfo{}, fmt.Errorf("reading module .modinfo section: %w", err)
	}
	return ParseModinfo(data)
}

// truncate shortens s for an error message: the package's limit for
// textclip.Clip.
func truncate(s string) string { return textclip.Clip(s, 64) }
