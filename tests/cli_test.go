package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/tests/harness"
)

// TestImageBuildRegister builds an encrypted image with --register: the
// generated passphrase goes straight to the broker's admin API and never
// to a file, and the broker then knows the workload with the simulated
// measurement `sealroot measure` prints for the same inputs.
func TestImageBuildRegister(t *testing.T) {
	e := harness.Setup(t)
	bin := e.Sealroot(t)
	token := harness.WriteFile(t, "admin-token", []byte(strings.Repeat("ab", 32)), 0o600)
	b := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t), "--admin-token-file", token)
	out := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		o, err := cmd.Output()
		if err != nil {
			t.Fatalf("sealroot %s: %v", strings.Join(args, " "), err)
		}
		return string(o)
	}
	run("image", "build", "--rootfs", e.HelloRootfs(t), "--tee", "sim", "--workload-id", "cli-reg",
		"--attestation-url", "http://10.0.2.100:8000", "--cpus", "1", "--memory", "512", "--cmd", "/hello",
		"--register", "--broker", b.URL, "--admin-token-file", token, "--kernel", e.Kernel, "--initrd", e.Initrd, "-o", out)
	m := strings.TrimSpace(run("measure", "--tee", "sim", "--kernel", e.Kernel, "--initrd", e.Initrd, "--disk", filepath.Join(out, "disk.img")))
	var w struct {
		TEE           string `json:"tee"`
		HasPassphrase bool   `json:"has_passphrase"`
		Policy        struct {
			Measurements []string `json:"measurements"`
		} `json:"policy"`
	}
	if err := json.Unmarshal([]byte(run("workloads", "show", "cli-reg", "--broker", b.URL, "--admin-token-file", token, "--json")), &w); err != nil {
		t.Fatal(err)
	}
	if w.TEE != "sim" || !w.HasPassphrase || len(w.Policy.Measurements) != 1 || w.Policy.Measurements[0] != m {
		t.Fatalf("registered %+v, want tee sim, a passphrase and measurement %s", w, m)
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if e.Name() != "disk.img" && e.Name() != "krun-sev.json" {
			t.Errorf("unexpected file %s in the output directory", e.Name())
		}
	}
}
