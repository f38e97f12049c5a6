package initramfs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/bb"
	"github.com/u-root/gobusybox/src/pkg/golang"
)

// DebugMarkerPath exists only in a debug image; the init may check it (or
// /bin/sh) before offering a shell.
const DebugMarkerPath = "/etc/sealroot/debug"

// urootModule is the module whose commands make up the debug tools.
const urootModule = "github.com/u-root/u-root"

// urootFallbackVersion is used when the running binary does not record
// which u-root it was built with (go run, tests).
const urootFallbackVersion = "v0.16.0"

// DebugCommands are the u-root core commands a debug image carries, in one
// busybox-style binary /bbin/bb with a /bbin/<name> symlink each. /bin/sh is
// gosh.
var DebugCommands = []string{
	"cat", "chmod", "cp", "dd", "df", "dmesg", "echo", "find", "free", "grep",
	"gosh", "head", "hexdump", "ip", "kill", "ln", "ls", "lsmod", "insmod",
	"rmmod", "mkdir", "mknod", "more", "mount", "mv", "poweroff", "ps", "pwd",
	"readlink", "rm", "sleep", "strings", "sync", "tail", "tee", "umount",
	"uname", "wc",
}

// urootVersion returns the u-root version this binary was built with.
func urootVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == urootModule {
				if d.Replace != nil {
					d = d.Replace
				}
				return d.Version
			}
		}
	}
	return urootFallbackVersion
}

// urootDir returns the directory of u-root's module source, downloading it
// into the module cache through the Go toolchain if needed.
func urootDir(goBin, version, tmp string) (string, error) {
	cmd := exec.Command(goBin, "mod", "download", "-json", urootModule+"@"+version)
	cmd.Dir = tmp // outside any module
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil || runErr != nil || info.Dir == "" {
		msg := strings.TrimSpace(info.Error + " " + stderr.String())
		return "", fmt.Errorf("fetching %s@%s: %w %s", urootModule, version, runErr, msg)
	}
	return info.Dir, nil
}

// addDebugTools builds u-root's DebugCommands into one busybox binary and
// adds it with its links and /bin/sh, built for arch (the init's GOARCH;
// the host's when empty). The build uses the Go toolchain in
// GOPATH mode on sources gobusybox rewrites, with -trimpath and a stripped
// binary, so it is as reproducible as the init.
func addDebugTools(opts *Options, t *tree, tmp, arch string) error {
	fail := func(err error) error {
		return fmt.Errorf("debug tools (u-root shell and core commands) could not be built; build without --debug, or make the Go toolchain and module proxy (or a module cache holding u-root) available: %w", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fail(err)
	}
	out, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		return fail(fmt.Errorf("go env GOROOT: %w", err))
	}
	goroot := strings.TrimSpace(string(out))
	version := urootVersion()
	dir, err := urootDir(goBin, version, tmp)
	if err != nil {
		return fail(err)
	}
	paths := make([]string, 0, len(DebugCommands))
	for _, c := range DebugCommands {
		paths = append(paths, filepath.Join(dir, "cmds", "core", c))
	}
	log := opts.logger()
	log.Info("building the debug tools", "module", urootModule+"@"+version, "commands", len(DebugCommands))
	bin := filepath.Join(tmp, "bb")
	env := golang.Default(golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOROOT(goroot), golang.WithWorkingDir(dir), golang.WithMod(golang.ModOnly))
	env.GO111MODULE = "on"
	if arch != "" {
		env.GOARCH = arch // the init's architecture, for cross-built images
	}
	// gobusybox's own lines are debug records, marked as its.
	err = bb.BuildBusybox(slog.NewLogLogger(log.With("tool", "gobusybox").Handler(), slog.LevelDebug), &bb.Opts{
		Env:          env,
		GenSrcDir:    filepath.Join(tmp, "bbsrc"),
		CommandPaths: paths,
		BinaryPath:   bin,
		GoBuildOpts:  &golang.BuildOpts{},
	})
	if err != nil {
		return fail(err)
	}
	image, err := readInit(bin)
	if err != nil {
		return fail(err)
	}
	if err := t.file("/bbin/bb", image, 0o755); err != nil {
		return err
	}
	for _, c := range DebugCommands {
		if err := t.symlink(path.Join("/bbin", c), "bb"); err != nil {
			return err
		}
	}
	if err := t.symlink("/bin/sh", "../bbin/gosh"); err != nil {
		return err
	}
	return t.file(DebugMarkerPath, []byte("debug image: shell /bin/sh, tools in /bbin ("+urootModule+"@"+version+")\n"), 0o644)
}
