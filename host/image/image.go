// Package image builds confidential workload disks in buildah's layout
// (docs/interop.md §1): disk.img = [LUKS header][encrypted ext4][padding]
// [config JSON]["KRUN"][u64 length], plus krun-sev.json holding the same
// config bytes, with the workload's /.krun_config.json inside the
// filesystem.
//
// The filesystem is made by mkfs.ext4 -d straight from the rootfs directory
// (an OCI layout is first flattened into a temporary directory); the
// workload config is added with debugfs, so the caller's rootfs is never
// modified or copied. Plaintext exists only in a temporary file that is
// removed; encryption streams it into the disk image.
package image

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// Workload overrides the process of the image (flags of `image build`).
type Workload struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkDir    string
	User       string
}

func (w Workload) empty() bool {
	return w.Entrypoint == nil && w.Cmd == nil && w.Env == nil && w.WorkDir == "" && w.User == ""
}

// Encryptor writes the LUKS volume holding plaintext (size bytes) at the
// start of dst and returns the end of the payload (cryptsetup.Format).
type Encryptor func(dst *os.File, plaintext io.Reader, size int64, passphrase []byte) (payloadEnd int64, err error)

// Options for Build.
type Options struct {
	RootfsDir string
	OCIDir    string // an OCI image layout directory
	OCIRef    string // image name in the layout; empty for the only one
	OutDir    string

	// Encrypt, when set, encrypts the filesystem; nil builds a plain disk.
	Encrypt    Encryptor
	Passphrase []byte

	Config   diskconfig.Config // tee, workload_id, cpus, ram_mib, attestation_url...
	Slop     string            // "25%" (default), or an absolute size like "512M"
	Workload Workload
	TempDir  string
	// Logger receives a record per build step (docs/design.md,
	// "Logging"); nil discards them.
	Logger *slog.Logger
	// Progress, when set, returns a writer that is fed every plaintext
	// byte as it is encrypted (a progress bar on a terminal). It is
	// output for the user, not a log.
	Progress func(total int64, what string) io.Writer

	// Integrity "verity" makes the filesystem read-only and appends a
	// dm-verity tree (verity.go); "" or "none" builds a writable root.
	Integrity string
	// OverlaySize is the config's overlay_size (verity only).
	OverlaySize string
	// VerityFormat replaces the built-in tree builder (see VerityFormat).
	VerityFormat VerityFormat
}

// Result describes a built image.
type Result struct {
	Disk       string             `json:"disk"`
	ConfigFile string             `json:"config_file"`
	Size       int64              `json:"size"`
	FSSize     int64              `json:"fs_size"`
	Encrypted  bool               `json:"encrypted"`
	Integrity  string             `json:"integrity,omitempty"`
	RootHash   string             `json:"root_hash,omitempty"`
	Config     *diskconfig.Config `json:"config"`
	ConfigJSON []byte             `json:"-"`
}

// NewWorkloadID returns a random workload id.
func NewWorkloadID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Build makes OutDir/disk.img and OutDir/krun-sev.json.
func Build(o Options) (*Result, error) {
	if (o.RootfsDir == "") == (o.OCIDir == "") {
		return nil, errors.New("give exactly one of a rootfs directory or an OCI layout")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Encrypt != nil && len(o.Passphrase) == 0 {
		return nil, errors.New("encrypting needs a passphrase")
	}
	cfg := o.Config
	enc := o.Encrypt != nil
	cfg.Encrypted = &enc
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	verityRoot, err := checkIntegrity(o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(o.TempDir, "sealroot-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	rootfs := o.RootfsDir
	var workloadJSON []byte
	if o.OCIDir != "" {
		img, err := LoadOCI(o.OCIDir, o.OCIRef)
		if err != nil {
			return nil, err
		}
		raw, _, err := OCIConfig(img)
		if err != nil {
			return nil, err
		}
		rootfs = filepath.Join(work, "rootfs")
		if err := os.Mkdir(rootfs, 0o755); err != nil {
			return nil, err
		}
		log.Info("extracting the OCI image", "dir", o.OCIDir)
		if err := ExtractOCI(img, rootfs); err != nil {
			return nil, fmt.Errorf("extracting %s: %w", o.OCIDir, err)
		}
		if workloadJSON, err = mergeWorkload(raw, o.Workload); err != nil {
			return nil, err
		}
	} else {
		fi, err := os.Stat(rootfs)
		if err != nil {
			return nil, fmt.Errorf("rootfs: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("rootfs %s is not a directory", rootfs)
		}
		existing, err := os.ReadFile(filepath.Join(rootfs, ".krun_config.json"))
		switch {
		case err == nil && o.Workload.empty():
			workloadJSON = nil // keep the rootfs's own
			_ = existing
		case err == nil:
			if workloadJSON, err = mergeWorkload(existing, o.Workload); err != nil {
				return nil, fmt.Errorf("rootfs's .krun_config.json: %w", err)
			}
		default:
			if workloadJSON, err = mergeWorkload([]byte(`{}`), o.Workload); err != nil {
				return nil, err
			}
		}
	}

	used, err := treeSize(rootfs)
	if err != nil {
		return nil, fmt.Errorf("measuring %s: %w", rootfs, err)
	}
	fsSize, err := FSSize(used, o.Slop)
	if err != nil {
		return nil, err
	}
	fsPath := filepath.Join(work, "rootfs.ext4")
	if o.Encrypt == nil {
		fsPath = filepath.Join(o.OutDir, "disk.img.tmp")
		defer os.Remove(fsPath)
	}
	log.Info("making the ext4 filesystem", "dir", rootfs, "size_mib", fsSize>>20, "used_mib", used>>20)
	if fsSize, err = mkfs(fsPath, rootfs, fsSize, mkfsFeatures(verityRoot)...); err != nil {
		return nil, err
	}
	if workloadJSON != nil {
		if err := debugfsWrite(fsPath, work, ".krun_config.json", workloadJSON); err != nil {
			return nil, err
		}
	}
	payloadSize := fsSize
	if verityRoot {
		v, size, err := appendVerity(fsPath, fsSize, o.VerityFormat, log)
		if err != nil {
			return nil, err
		}
		cfg.Integrity, cfg.Verity, cfg.OverlaySize = diskconfig.IntegrityVerity, v, o.OverlaySize
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("the verity tree built: %w", err)
		}
		payloadSize = size
	}

	diskPath := filepath.Join(o.OutDir, "disk.img")
	var disk *os.File
	var end int64
	if o.Encrypt == nil {
		disk, err = os.OpenFile(fsPath, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		end = payloadSize
	} else {
		tmp := diskPath + ".tmp"
		disk, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
		defer os.Remove(tmp)
		plain, err := os.Open(fsPath)
		if err != nil {
			disk.Close()
			return nil, err
		}
		log.Info("encrypting the filesystem", "size_mib", payloadSize>>20)
		var src io.Reader = plain
		if o.Progress != nil {
			src = io.TeeReader(plain, o.Progress(payloadSize, "encrypting"))
		}
		end, err = o.Encrypt(disk, src, payloadSize, o.Passphrase)
		plain.Close()
		os.Remove(fsPath) // plaintext gone as soon as it is encrypted
		if err != nil {
			disk.Close()
			return nil, fmt.Errorf("encrypting: %w", err)
		}
	}
	if o.Encrypt != nil {
		// Bind the volume into the config, and so into HOST_DATA: the
		// init refuses any other volume (docs/threat-model.md).
		if cfg.RootVolume, err = cryptsetup.ReadVolumeID(disk, end); err != nil {
			disk.Close()
			return nil, fmt.Errorf("reading the identity of the volume just encrypted: %w", err)
		}
	}
	cfgJSON, err := cfg.Marshal()
	if err != nil {
		disk.Close()
		return nil, err
	}
	total, err := diskconfig.AppendFooter(disk, end, cfgJSON)
	if err == nil {
		err = disk.Truncate(total)
	}
	if err == nil {
		err = disk.Sync()
	}
	if cerr := disk.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("finishing %s: %w", diskPath, err)
	}
	if err := os.Rename(disk.Name(), diskPath); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(o.OutDir, "krun-sev.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o644); err != nil {
		return nil, err
	}
	res := &Result{Disk: diskPath, ConfigFile: cfgPath, Size: total, FSSize: fsSize, Encrypted: o.Encrypt != nil, Config: &cfg, ConfigJSON: cfgJSON}
	if cfg.Verity != nil {
		res.Integrity, res.RootHash = cfg.Integrity, cfg.Verity.RootHash
	}
	return res, nil
}

// mergeWorkload applies flag overrides to an OCI image config document,
// keeping every other key as it is. The result nests the process under
// "config", as buildah writes it.
func mergeWorkload(raw []byte, w Workload) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("workload config is not a JSON object: %w", err)
	}
	inner := map[string]json.RawMessage{}
	if c, ok := doc["config"]; ok && string(c) != "null" {
		if err := json.Unmarshal(c, &inner); err != nil {
			return nil, fmt.Errorf("workload config \"config\": %w", err)
		}
	}
	set := func(k string, v any) {
		b, _ := json.Marshal(v)
		inner[k] = b
	}
	if w.Entrypoint != nil {
		set("Entrypoint", w.Entrypoint)
		if w.Cmd == nil {
			delete(inner, "Cmd") // as docker: a new entrypoint resets Cmd
		}
	}
	if w.Cmd != nil {
		set("Cmd", w.Cmd)
	}
	if w.Env != nil {
		var env []string
		if e, ok := inner["Env"]; ok {
			if err := json.Unmarshal(e, &env); err != nil {
				return nil, fmt.Errorf("image config: Env: %w", err)
			}
		}
		set("Env", mergeEnv(env, w.Env))
	}
	if w.WorkDir != "" {
		set("WorkingDir", w.WorkDir)
	}
	if w.User != "" {
		set("User", w.User)
	}
	b, _ := json.Marshal(inner)
	doc["config"] = b
	return json.Marshal(doc)
}

func mergeEnv(base, add []string) []string {
	out := append([]string{}, base...)
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// treeSize is the space the tree needs: file data rounded to 4 KiB blocks
// plus an inode's worth per entry.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n += 256
		if d.Type().IsRegular() || d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += (fi.Size() + 4095) &^ 4095
		}
		return nil
	})
	return n, err
}

// MinFSSize is buildah's minimum filesystem size.
const MinFSSize = 10 << 20

// FSSize applies a slop spec to used bytes: "25%" adds a quarter (buildah's
// default), "512M"/"1G"/"4096B" add an absolute amount. A number without a
// unit other than 0 is refused: "5" meant 5% or 5M, hardly 5 bytes. The
// result is at least MinFSSize and a multiple of 1 MiB.
func FSSize(used int64, slop string) (int64, error) {
	if slop == "" {
		slop = "25%"
	}
	var extra int64
	if p, ok := strings.CutSuffix(slop, "%"); ok {
		pct, err := strconv.ParseFloat(p, 64)
		if err != nil || pct < 0 || pct > 10000 {
			return 0, fmt.Errorf("slop %q: want a percentage like 25%% or a size like 512M", slop)
		}
		extra = int64(float64(used) * pct / 100)
	} else {
		if _, err := strconv.ParseUint(slop, 10, 64); err == nil && strings.Trim(slop, "0") != "" {
			return 0, fmt.Errorf("slop %q: a number needs its unit: %s%% or %sM", slop, slop, slop)
		}
		n, err := ParseSize(slop)
		if err != nil {
			return 0, fmt.Errorf("slop %q: %w", slop, err)
		}
		extra = n
	}
	size := used + extra
	// ext4's own metadata (journal, inode tables) on small filesystems.
	size += 4 << 20
	if size < MinFSSize {
		size = MinFSSize
	}
	return (size + (1<<20 - 1)) &^ (1<<20 - 1), nil
}

// ParseSize reads 4096, 512K, 64M, 2G (binary units; a trailing B or iB is
// accepted).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}

// mkfs makes an ext4 filesystem of size bytes at path from dir, growing it
// when the estimate was too small for ext4's metadata. It returns the size
// used.
func mkfs(path, dir string, size int64, extra ...string) (int64, error) {
	for try := 0; ; try++ {
		os.Remove(path)
		f, err := os.Create(path)
		if err != nil {
			return 0, err
		}
		err = f.Truncate(size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("sizing %s: %w", path, err)
		}
		// 4 KiB blocks always: LUKS2 volumes use 4096-byte sectors.
		args := append([]string{"-q", "-F", "-b", "4096"}, extra...)
		out, err := exec.Command("mkfs.ext4", append(args, "-d", dir, path)...).CombinedOutput()
		if err == nil {
			return size, nil
		}
		if try < 3 && strings.Contains(string(out), "Could not allocate") || try < 3 && strings.Contains(string(out), "No space left") {
			size = (size + size/2 + (1<<20 - 1)) &^ (1<<20 - 1)
			continue
		}
		if errors.Is(err, exec.ErrNotFound) {
			return 0, errors.New("mkfs.ext4 not found: install e2fsprogs (make deps)")
		}
		return 0, fmt.Errorf("mkfs.ext4 -d %s: %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
}

// debugfsWrite writes data as /name into the ext4 image (root-owned, 0644).
func debugfsWrite(image, work, name string, data []byte) error {
	src := filepath.Join(work, "krun_config.json")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		return err
	}
	cmds := fmt.Sprintf("rm %s\nwrite %s %s\nset_inode_field %s uid 0\nset_inode_field %s gid 0\n", name, src, name, name, name)
	cmd := exec.Command("debugfs", "-w", "-f", "-", image)
	cmd.Stdin = strings.NewReader(cmds)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("debugfs writing /%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	if strings.Contains(string(out), "Could not allocate") || strings.Contains(string(out), "No free space") {
		return fmt.Errorf("debugfs writing /%s: filesystem full: %s", name, strings.TrimSpace(string(out)))
	}
	return nil
}
