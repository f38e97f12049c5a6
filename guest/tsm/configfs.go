package tsm

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
	"golang.org/x/sys/unix"
)

// configfsMagic is CONFIGFS_MAGIC from linux/magic.h.
const configfsMagic = 0x62656570

// MountConfigfs mounts configfs at /sys/kernel/config unless it is mounted
// already. /sys must be mounted. It is a no-op on a second call.
func MountConfigfs() error {
	return mountConfigfsAt(ConfigfsDir, unix.Statfs, unix.Mount)
}

func mountConfigfsAt(dir string,
	statfs func(string, *unix.Statfs_t) error,
	mount func(source, target, fstype string, flags uintptr, data string) error,
) error {
	var st unix.Statfs_t
	if err := statfs(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("mounting configfs: %s does not exist (is /sys mounted, and is configfs in the kernel?)", dir)
		}
		return fmt.Errorf("mounting configfs: %s: %w", dir, err)
	}
	if st.Type == configfsMagic {
		return nil
	}
	if err := mount("configfs", dir, "configfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting configfs on %s: %w", dir, err)
	}
	return nil
}

// tsmClient returns the configured client or the real configfs-tsm one.
func tsmClient(c configfsi.Client) (configfsi.Client, error) {
	if c != nil {
		return c, nil
	}
	rc, err := linuxtsm.MakeClient()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TSMReportDir, err)
	}
	return rc, nil
}

// tsmProvider reads the provider of a fresh, never generated report entry.
func tsmProvider(c configfsi.Client) (string, error) {
	r, err := report.Create(c, &report.Request{})
	if err != nil {
		return "", fmt.Errorf("%s: %w", TSMReportDir, err)
	}
	defer func() { _ = r.Destroy() }() // best effort: a probe entry left behind holds no secret
	// Writing an input first makes the entry's generation move, which some
	// implementations (go-configfs-tsm's fake among them) need before they
	// serve read-only attributes. No report is generated until outblob is
	// read.
	if err := r.WriteOption("inblob", make([]byte, 64)); err != nil {
		return "", fmt.Errorf("%s: %w", TSMReportDir, err)
	}
	p, err := r.ReadOption("provider")
	if err != nil {
		return "", fmt.Errorf("%s: reading provider: %w", TSMReportDir, err)
	}
	return strings.TrimSpace(string(p)), nil
}

// tsmReport generates a report and checks that the provider that made it is
// one of want (a provider can change only if the driver is replaced, but a
// report from the wrong TEE must never be returned).
func tsmReport(c configfsi.Client, req *report.Request, want ...string) (*report.Response, error) {
	resp, err := report.Get(c, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TSMReportDir, err)
	}
	if p := strings.TrimSpace(resp.Provider); !slices.Contains(want, p) {
		return nil, fmt.Errorf("%s: report made by provider %q, want %s", TSMReportDir, p, strings.Join(want, " or "))
	}
	return resp, nil
}

// deviceExists reports whether a device node is present.
func deviceExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
