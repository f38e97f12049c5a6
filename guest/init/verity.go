package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/sealroot/sealroot/verity"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

// A verity root (docs/integrity.md): after the unlock phase the init maps
// dm-verity over the root payload with the tree the attested config
// records, mounts it read-only as the lower layer of an overlay whose
// upper layer is a tmpfs, and watches the verity target while the
// workload runs. A block that does not match the tree is an I/O error to
// whoever reads it; the init then stops the workload and the boot ends
// with event.StatusIntegrity (215) and one console line naming the block.

// Where the layers are mounted in the initramfs. They are left behind,
// unreachable, when the root switches to the overlay; the overlay keeps
// them alive, and the workload never sees them.
const (
	verityName  = "root-verity"
	lowerDir    = "/sealroot/lower"
	writableDir = "/sealroot/rw"
)

// verityRoot is the state of a mapped verity root.
type verityRoot struct {
	m *verity.Mapping
}

// mapVerity is the verity phase: nothing for a root without integrity.
func (b *boot) mapVerity(ctx context.Context) error {
	if b.cfg.Integrity != diskconfig.IntegrityVerity {
		b.detail = map[string]string{"integrity": "none"}
		return nil
	}
	p, root, err := verity.FromConfig(b.cfg.Verity)
	if err != nil {
		return fail(event.StatusBadConfig, err)
	}
	dev := b.rootFS
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	// One block read tells "this config is for another disk" from a
	// damaged block met later: the top of the tree on the disk must hash
	// to the attested root.
	err = verity.CheckRoot(f, f, p, root)
	f.Close()
	if errors.Is(err, verity.ErrRootMismatch) {
		return fail(event.StatusIntegrity, fmt.Errorf("the config's root hash %s does not match the hash tree on %s: refusing a disk that is not the one this config was built for", b.cfg.Verity.RootHash, dev))
	}
	if err != nil {
		return fail(event.StatusIntegrity, fmt.Errorf("%s: %w", dev, err))
	}
	m, err := verity.Map(verityName, dev, dev, p, root)
	if err != nil {
		return err
	}
	b.verity = &verityRoot{m: m}
	b.rootFS = m.Device
	b.detail = map[string]string{"integrity": "verity", "device": m.Device, "root_hash": b.cfg.Verity.RootHash,
		"data_blocks": fmt.Sprint(p.DataBlocks)}
	return nil
}

// mountVerityRoot mounts the verity device read-only and the overlay that
// gives the workload a writable root on newRoot.
func (b *boot) mountVerityRoot(ctx context.Context) error {
	fstype, flags, err := mount.FSFromBlock(b.rootFS)
	if err != nil {
		return b.verity.explain(fmt.Errorf("detecting the filesystem on %s: %w", b.rootFS, err))
	}
	for _, d := range []string{lowerDir, writableDir, newRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount(b.rootFS, lowerDir, fstype, flags|unix.MS_RDONLY|rootMountFlags, ""); err != nil {
		return b.verity.explain(fmt.Errorf("mounting %s (%s) read-only on %s: %w", b.rootFS, fstype, lowerDir, err))
	}
	size := b.cfg.Overlay()
	if err := unix.Mount("tmpfs", writableDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size="+size); err != nil {
		return fmt.Errorf("mounting the tmpfs of the writable layer (overlay_size %s): %w", size, err)
	}
	upper, work := filepath.Join(writableDir, "upper"), filepath.Join(writableDir, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	// The merged root takes its owner and mode from the upper directory.
	var st unix.Stat_t
	if err := unix.Stat(lowerDir, &st); err != nil {
		return b.verity.explain(err)
	}
	if err := os.Chown(upper, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := os.Chmod(upper, os.FileMode(st.Mode&0o7777)); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lowerDir, upper, work)
	if err := unix.Mount("overlay", newRoot, "overlay", rootMountFlags, opts); err != nil {
		return fmt.Errorf("mounting the overlay root (%s): %w (is the overlay module in the initrd?)", opts, err)
	}
	b.detail = map[string]string{"fstype": fstype, "lower": "verity, read-only", "upper": "tmpfs size=" + size}
	return nil
}

// explain turns an error met while reading the verity device into the
// integrity failure when the kernel saw a corrupted block.
func (v *verityRoot) explain(err error) error {
	if v == nil || err == nil {
		return err
	}
	if c, _ := v.m.Corrupted(); c {
		return fail(event.StatusIntegrity, v.corruption(false))
	}
	return err
}

// corruption describes the failure, with the kernel's own line naming the
// block when /dev/kmsg still holds it.
func (v *verityRoot) corruption(stoppedWorkload bool) error {
	msg := "a block of the root does not match the attested hash tree (changed, damaged or replayed by the host)"
	if line := lastVerityLine(); line != "" {
		msg += ": kernel: " + line
	}
	if stoppedWorkload {
		msg += "; the workload was stopped"
	}
	return errors.New(msg)
}

// lastVerityLine returns the latest dm-verity corruption message of the
// kernel log ("device-mapper: verity: 253:1: data block 7 is corrupted").
func lastVerityLine() string {
	// Raw reads: an os.File over a non-blocking descriptor would park in
	// the poller at the log's end instead of returning EAGAIN.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	var last string
	buf := make([]byte, 8192) // one record per read
	for i := 0; i < 100000; i++ {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE || err == unix.EINTR {
			continue // a record was overwritten before we read it
		}
		if err != nil || n <= 0 {
			break // EAGAIN: the end of the log
		}
		rec := string(buf[:n])
		if _, text, ok := strings.Cut(rec, ";"); ok && strings.Contains(text, "verity") && strings.Contains(text, "corrupted") {
			text, _, _ = strings.Cut(text, "\n")
			last = strings.TrimSpace(text)
		}
	}
	return last
}

// watch polls the verity target while the workload runs; at the first
// sign of corruption it kills every process but PID 1, which ends the
// supervised run. The returned function stops the watch and returns the
// integrity failure if the target ever reported corruption, checking once
// more after the workload's exit.
func (v *verityRoot) watch() (stop func() error) {
	if v == nil {
		return func() error { return nil }
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if c, _ := v.m.Corrupted(); c {
					if unix.Getpid() == 1 {
						unix.Kill(-1, unix.SIGKILL)
					}
					return
				}
			}
		}
	}()
	return func() error {
		close(done)
		wg.Wait()
		if c, _ := v.m.Corrupted(); c {
			return v.corruption(true)
		}
		return nil
	}
}

// integrityFailure replaces a phase's failure by the integrity failure when
// the verity target saw a corrupted block: an unreadable file or directory
// of the root is then the host's doing, not a bad image.
func (b *boot) integrityFailure(status int, err error) (int, error) {
	if b.verity == nil || status == event.StatusIntegrity {
		return status, err
	}
	if c, _ := b.verity.m.Corrupted(); c {
		return event.StatusIntegrity, b.verity.corruption(false)
	}
	return status, err
}
