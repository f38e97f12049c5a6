package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/guest/internal/hostchan"
	"github.com/sealroot/sealroot/guest/internal/modload"
	"github.com/sealroot/sealroot/guest/internal/pid1"
	"github.com/sealroot/sealroot/guest/internal/workload"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

// newRoot is where the root filesystem is mounted before switch_root.
const newRoot = "/newroot"

// boot is the state that flows from phase to phase.
type boot struct {
	start  time.Time
	report *hostchan.Reporter
	opts   options
	detail map[string]string

	// machine holds the paths, probes and factories the phases use
	// (seams.go); the zero value is the real machine.
	machine machine

	// The host channel connecting in the background (hostlink.go), and
	// the guest key pair made from PID 1's start (keyahead.go).
	link     *hostchan.Link
	keyAhead *keyAhead
	// net is the broker link's bring-up, started by the config phase
	// (earlynet.go).
	net *earlyNet

	host    interface{ Close() error }
	closers []interface{ Close() error }
	cfg     *diskconfig.Config
	// rawConfig is the config JSON exactly as read: its SHA-256 is the
	// HOST_DATA the launcher binds into the TEE's reports.
	rawConfig []byte
	// encrypted says the root payload is LUKS; passphrase lives from the
	// attest phase to the unlock phase, which wipes it.
	encrypted  bool
	volume     *cryptsetup.Volume
	attester   attest.Attester // the boot's, kept for runtime evidence
	passphrase []byte
	rootFS     string // block device holding the root filesystem
	spec       *workload.Spec

	// verity is a verity root's mapping (verity.go).
	verity *verityRoot

	done       bool
	exitStatus int
}

func (b *boot) closeHost() {
	for _, c := range b.closers {
		c.Close()
	}
	if b.host != nil {
		b.host.Close()
	}
}

// phases is the boot sequence (docs/design.md, "The guest init").
var phases = []phase{
	{"mounts", 5 * time.Second, event.StatusEarlySetup, (*boot).mounts},
	{"modules", 60 * time.Second, event.StatusModulesFailed, (*boot).modules},
	{"hostchan", 3 * time.Second, event.StatusEarlySetup, (*boot).hostChannel},
	{"disk", time.Hour, event.StatusNoRootDisk, (*boot).waitDisk}, // deadline: sealroot.disk_timeout
	{"config", 10 * time.Second, event.StatusBadConfig, (*boot).readConfig},
	{"payload", 10 * time.Second, event.StatusUnlockFailed, (*boot).payload},
	{"network", 10 * time.Second, event.StatusBrokerRefused, (*boot).network},
	{"attest", 10 * time.Minute, event.StatusBrokerRefused, (*boot).attest}, // deadline: the config's attest_timeout
	{"unlock", 5 * time.Minute, event.StatusUnlockFailed, (*boot).unlockRoot},
	{"verity", 60 * time.Second, event.StatusIntegrity, (*boot).mapVerity},
	{"mount", 30 * time.Second, event.StatusMountFailed, (*boot).mountRoot},
	{"switchroot", 30 * time.Second, event.StatusMountFailed, (*boot).switchRoot},
	{"workload", 30 * time.Second, event.StatusBadWorkload, (*boot).prepareWorkload},
	{"seal", 30 * time.Second, event.StatusSealFailed, (*boot).sealTEE},
	{"run", 1<<63 - 1, event.StatusBadWorkload, (*boot).runWorkload},
}

func (b *boot) mounts(ctx context.Context) error {
	if err := pid1.MountAll("/", pid1.EarlyMounts); err != nil {
		return err
	}
	b.opts = parseCmdline(b.cmdline())
	if err := pid1.DisableModprobe(); err != nil {
		return fmt.Errorf("disabling the modprobe helper: %w", err)
	}
	return nil
}

func (b *boot) modules(ctx context.Context) error {
	es, err := modload.ReadOrder(modload.OrderFile)
	if err != nil {
		return err
	}
	n, err := modload.LoadAll(es, modload.Finit)
	b.detail = map[string]string{"loaded": fmt.Sprint(n)}
	return err
}

func (b *boot) waitDisk(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.diskTimeout)
	defer cancel()
	if err := pid1.WaitForDevice(ctx, b.opts.root); err != nil {
		return fmt.Errorf("root disk: %w (is the disk attached as the first virtio-blk device?)", err)
	}
	return nil
}

// readConfig reads the KRUN footer of the root disk, or the data disk's
// config when the root disk has none.
func (b *boot) readConfig(ctx context.Context) error {
	raw, err := diskconfig.ReadFooterFile(b.opts.root)
	source := "footer of " + b.opts.root
	if errors.Is(err, diskconfig.ErrNoFooter) {
		if data := b.dataDisk(); fileExists(data) {
			source = "data disk " + data
			raw, err = configFromDataDisk(data)
			if err != nil {
				return fmt.Errorf("%s has no KRUN footer, and the data disk: %w", b.opts.root, err)
			}
		}
	}
	if err != nil {
		return err
	}
	cfg, err := diskconfig.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if err := refuseUnattestedInTEE(b.probeTEE(), cfg); err != nil {
		return err
	}
	b.cfg = cfg
	b.rawConfig = raw
	b.detail = map[string]string{"tee": cfg.TEE, "workload_id": cfg.WorkloadID}
	b.startNetwork()
	return nil
}

// configFromDataDisk accepts a data disk with a KRUN footer, or one that
// starts with the config JSON (NUL-padded to the disk's size).
func configFromDataDisk(dev string) ([]byte, error) {
	raw, err := diskconfig.ReadFooterFile(dev)
	if err == nil || !errors.Is(err, diskconfig.ErrNoFooter) {
		return raw, err
	}
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, diskconfig.MaxFooterJSON)
	n, _ := f.ReadAt(buf, 0)
	buf = bytes.TrimRight(buf[:n], "\x00")
	if len(buf) == 0 || buf[0] != '{' {
		return nil, fmt.Errorf("%s holds neither a KRUN footer nor config JSON", dev)
	}
	return buf, nil
}

// payload decides how the root filesystem is reached: directly for a plain
// payload, through attestation and dm-crypt for a LUKS one.
func (b *boot) payload(ctx context.Context) error {
	vol, err := cryptsetup.Open(b.opts.root)
	enc := err == nil
	if err != nil && !errors.Is(err, cryptsetup.ErrNotLUKS) {
		return err // a LUKS header that cannot be read: never boot it as plain
	}
	if b.cfg.Encrypted != nil && *b.cfg.Encrypted != enc {
		return fmt.Errorf("config says encrypted=%v but %s is %s", *b.cfg.Encrypted, b.opts.root, map[bool]string{true: "LUKS", false: "not LUKS"}[enc])
	}
	if err := b.checkRootVolume(vol); err != nil { // vol is nil when not LUKS
		return err
	}
	if !enc {
		if b.cfg.TEE != attest.TEENone {
			return fail(event.StatusUnlockFailed, fmt.Errorf("tee %q but the payload of %s is not encrypted: refusing to boot an unprotected root as confidential", b.cfg.TEE, b.opts.root))
		}
		b.rootFS = b.opts.root
		b.detail = map[string]string{"encrypted": "false"}
		return nil
	}
	if !attest.Attestable(b.cfg.TEE) {
		return fmt.Errorf("%s is LUKS-encrypted but tee is %q: no attested way to get its key", b.opts.root, b.cfg.TEE)
	}
	b.encrypted = true
	b.volume = vol
	b.closers = append(b.closers, vol)
	b.detail = map[string]string{"encrypted": "true", "luks": fmt.Sprint(vol.Header().Version)}
	return nil
}

func (b *boot) mountRoot(ctx context.Context) error {
	if b.verity != nil {
		return b.mountVerityRoot(ctx)
	}
	fstype, flags, err := mount.FSFromBlock(b.rootFS)
	if err != nil {
		return fmt.Errorf("detecting the filesystem on %s: %w", b.rootFS, err)
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	// nodev: a device node shipped in the image (a host-made node of the
	// TEE's report device, say) must not open; the seal removes only the
	// nodes it knows of (docs/threat-model.md).
	if err := unix.Mount(b.rootFS, newRoot, fstype, flags|rootMountFlags, ""); err != nil {
		return fmt.Errorf("mounting %s (%s) on %s: %w", b.rootFS, fstype, newRoot, err)
	}
	b.detail = map[string]string{"fstype": fstype}
	return nil
}

// rootMountFlags are added to every mount the workload's root is made of.
const rootMountFlags = unix.MS_NODEV

func (b *boot) switchRoot(ctx context.Context) error {
	return pid1.SwitchRoot(newRoot)
}

func (b *boot) prepareWorkload(ctx context.Context) error {
	raw, err := workload.ReadConfigFile(workload.ConfigPath)
	if errors.Is(err, os.ErrNotExist) {
		b.report.Log("workload", "%s not found: running %s", workload.ConfigPath, workload.DefaultShell)
		raw = []byte("{}")
	} else if err != nil {
		return fmt.Errorf("reading %s: %w", workload.ConfigPath, err)
	}
	spec, err := workload.Parse(raw)
	if err != nil {
		return err
	}
	if err := spec.SetRlimits(); err != nil {
		return err
	}
	// An unknown user or group is a workload config error (209), found
	// here rather than when the run phase starts the program.
	if _, err := spec.ResolveUser("/"); err != nil {
		return err
	}
	b.spec = spec
	b.detail = map[string]string{"shape": spec.Shape}
	return nil
}

func (b *boot) runWorkload(ctx context.Context) error {
	// A program that could not start fails the phase with its status (127,
	// 126): one "run failed" line, never followed by "run ok".
	p, err := b.spec.Resolve("/")
	var se *workload.StartError
	if errors.As(err, &se) {
		return fail(se.Status, err)
	}
	if err != nil {
		return err
	}
	stdin, stdout, stderr, closeStdio, err := b.workloadStdio()
	if err != nil {
		return err
	}
	defer closeStdio()
	sv := &workload.Supervisor{Stdin: stdin, Stdout: stdout, Stderr: stderr, Grace: b.opts.grace}
	b.report.Log("run", "starting %s", p.Path)
	stopWatch := b.verity.watch()
	status, err := sv.Run(p)
	if verr := stopWatch(); verr != nil {
		b.report.Fail("run", event.StatusIntegrity, verr)
		b.exitStatus, b.done = event.StatusIntegrity, true
		return nil
	}
	if errors.As(err, &se) {
		return fail(se.Status, err)
	}
	b.detail = map[string]string{"status": fmt.Sprint(status)}
	b.exitStatus, b.done = status, true
	return nil
}
