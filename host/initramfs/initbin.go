package initramfs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	"golang.org/x/mod/modfile"
)

// DefaultModulePath is the Go module whose InitPackage is built when no init
// binary is given and the running binary does not name its own module.
const DefaultModulePath = "github.com/sealroot/sealroot"

// InitPackage is the package, relative to the module root, that holds the
// guest init.
const InitPackage = "./guest/init"

// maxInitSize bounds an init binary read into memory.
const maxInitSize = 256 << 20

// modulePath returns the Go module this binary belongs to.
func modulePath() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path != "" && bi.Main.Path != "command-line-arguments" {
		return bi.Main.Path
	}
	return DefaultModulePath
}

// FindModuleRoot returns the directory holding the go.mod of module mod,
// searching from dir upwards.
func FindModuleRoot(dir, mod string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modfile.ModulePath(b) == mod {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of module %s in %s or its parents; run from a checkout of %s or pass an init binary", mod, abs, mod)
		}
	}
}

// ErrNoInitMain means the module's InitPackage holds no main package yet.
var ErrNoInitMain = errors.New("the init package has no main package")

// hasMainPackage reports whether dir holds a main package that a linux
// build without cgo would compile.
func hasMainPackage(dir string) (bool, error) {
	ctx := build.Default
	ctx.GOOS = "linux"
	ctx.CgoEnabled = false
	p, err := ctx.ImportDir(dir, 0)
	var noGo *build.NoGoError
	if errors.As(err, &noGo) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return p.Name == "main", nil
}

// buildInit compiles the module's InitPackage into dir/init: static (CGO off),
// reproducible (-trimpath, no VCS stamp), stripped.
func buildInit(moduleRoot, dir string) (string, error) {
	pkgDir := filepath.Join(moduleRoot, filepath.FromSlash(InitPackage))
	ok, err := hasMainPackage(pkgDir)
	if err != nil {
		return "", fmt.Errorf("building init: %w", err)
	}
	if !ok {
		return "", fmt.Errorf("building init: %s: %w", pkgDir, ErrNoInitMain)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building init: the go toolchain is needed to build %s (or pass an init binary): %w", pkgDir, err)
	}
	out := filepath.Join(dir, "init")
	cmd := exec.Command(goBin, "build", "-o", out, "-trimpath", "-buildvcs=false", "-ldflags=-s -w", InitPackage)
	cmd.Dir = moduleRoot
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if !strings.Contains(os.Getenv("GOFLAGS"), "-mod=") {
		env = append(env, "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"))
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building init in %s: %w\n%s", moduleRoot, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// readInit reads an init binary and checks that it can run as /init in an
// initrd with nothing else in it: a static Linux ELF executable.
func readInit(file string) ([]byte, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("init binary: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("init binary %s is not a regular file", file)
	}
	if st.Size() > maxInitSize {
		return nil, fmt.Errorf("init binary %s is larger than %d bytes", file, maxInitSize)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("init binary: %w", err)
	}
	if err := checkStaticELF(b); err != nil {
		return nil, fmt.Errorf("init binary %s: %w", file, err)
	}
	return b, nil
}

// checkStaticELF rejects anything but a statically linked Linux executable.
func checkStaticELF(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %v is not an executable", f.Type)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("ELF OS ABI %v is not Linux", f.OSABI)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (it has an ELF interpreter; the initrd has no libc): build it with CGO_ENABLED=0")
		}
	}
	if f.Type == elf.ET_DYN && f.Entry == 0 {
		return errors.New("ELF shared library, not an executable")
	}
	return nil
}

// elfMachine returns the machine an ELF image is built for.
func elfMachine(b []byte) (elf.Machine, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Machine, nil
}

// goarch maps an ELF machine to the GOARCH that produces it ("" if none).
func goarch(m elf.Machine, class elf.Class, order binary.ByteOrder) string {
	switch m {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_386:
		return "386"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		if class == elf.ELFCLASS64 {
			return "riscv64"
		}
	case elf.EM_S390:
		return "s390x"
	case elf.EM_PPC64:
		if order == binary.LittleEndian {
			return "ppc64le"
		}
		return "ppc64"
	case elf.EM_LOONGARCH:
		return "loong64"
	}
	return ""
}

// elfGOARCH returns the GOARCH of an ELF image, or "".
func elfGOARCH(b []byte) string {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return ""
	}
	defer f.Close()
	return goarch(f.Machine, f.Class, f.ByteOrder)
}
