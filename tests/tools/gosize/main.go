// Command gosize prints how much of a Go binary each package accounts for,
// largest first: the sizes of the package's functions and data symbols
// from the ELF symbol table (build without -s), against the bytes the
// program loads (its allocated sections: what a stripped binary keeps
// besides headers), plus the share no symbol covers (pclntab, string
// data). `make bench` runs it on the guest init.
//
//	go run ./tests/tools/gosize [-top N] BINARY
package main

import (
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

func main() {
	top := flag.Int("top", 25, "print this many packages, then the rest as one line")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: gosize [-top N] BINARY (built without -s)")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *top); err != nil {
		fmt.Fprintln(os.Stderr, "gosize:", err)
		os.Exit(1)
	}
}

func run(path string, top int) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return fmt.Errorf("%s: %w (build it without -s)", path, err)
	}
	var loaded uint64
	for _, sec := range f.Sections {
		if sec.Flags&elf.SHF_ALLOC != 0 && sec.Type != elf.SHT_NOBITS {
			loaded += sec.Size
		}
	}
	sizes := map[string]uint64{}
	var total uint64
	for _, s := range syms {
		t := elf.ST_TYPE(s.Info)
		if s.Size == 0 || (t != elf.STT_FUNC && t != elf.STT_OBJECT) {
			continue
		}
		// Zero-initialised data (.bss, .noptrbss) takes no room in the file.
		if int(s.Section) >= len(f.Sections) || f.Sections[s.Section].Type == elf.SHT_NOBITS {
			continue
		}
		sizes[packageOf(s.Name)] += s.Size
		total += s.Size
	}
	type row struct {
		pkg  string
		size uint64
	}
	var rows []row
	for p, n := range sizes {
		rows = append(rows, row{p, n})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].size != rows[j].size {
			return rows[i].size > rows[j].size
		}
		return rows[i].pkg < rows[j].pkg
	})
	fmt.Printf("%s: %d bytes loaded (allocated sections); symbols %d bytes in %d packages\n", path, loaded, total, len(rows))
	var rest uint64
	for i, r := range rows {
		if i < top {
			fmt.Printf("  %9d  %5.1f%%  %s\n", r.size, 100*float64(r.size)/float64(loaded), r.pkg)
		} else {
			rest += r.size
		}
	}
	if rest > 0 {
		fmt.Printf("  %9d  %5.1f%%  (%d more packages)\n", rest, 100*float64(rest)/float64(loaded), len(rows)-top)
	}
	if other := loaded - min(total, loaded); other > 0 {
		fmt.Printf("  %9d  %5.1f%%  (not in symbols: pclntab, strings, type names)\n", other, 100*float64(other)/float64(loaded))
	}
	return nil
}

// packageOf returns the import path a Go symbol belongs to:
// "github.com/a/b.(*T).M" -> "github.com/a/b", "type:*foo.T" -> "(types)",
// "go:..." and "runtime...." stay grouped.
func packageOf(name string) string {
	switch {
	case strings.HasPrefix(name, "type:"):
		return "(type descriptors)"
	case strings.HasPrefix(name, "go:"):
		return "(go: tables)"
	}
	// The package path ends at the first '.' after the last '/' that comes
	// before any '(' or '[' (receivers and generic instantiations).
	cut := len(name)
	if i := strings.IndexAny(name, "(["); i >= 0 {
		cut = i
	}
	slash := strings.LastIndex(name[:cut], "/")
	dot := strings.Index(name[slash+1:], ".")
	if dot < 0 {
		return name
	}
	return name[:slash+1+dot]
}
