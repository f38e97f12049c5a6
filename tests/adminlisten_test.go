package tests

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/tests/harness"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// TestAdminAPIUnreachableFromGuest: with `broker --admin-listen`, a
// workload that holds the admin token and tries the admin API and the
// metrics at the address it attests to (through the launcher's relay)
// gets 404 for every spelling of the path, while the broker is reachable
// there (its health check answers) and the admin API is live on its own
// listener on the host.
func TestAdminAPIUnreachableFromGuest(t *testing.T) {
	e := harness.Setup(t)
	const id = "e2e-adminprobe"
	b := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t), "--admin-listen", "127.0.0.1:0")
	if b.AdminURL == b.URL {
		t.Fatal("the harness did not learn the admin listener")
	}

	rootfs := filepath.Join(t.TempDir(), "rootfs")
	e.GoBuild(t, "./tests/testprogs/adminprobe", filepath.Join(rootfs, "adminprobe"))
	pass, err := cryptsetup.GeneratePassphrase()
	if err != nil {
		t.Fatal(err)
	}
	fo := cryptsetup.FormatOptions{GeneratedPassphrase: true, GuestRAMMiB: 512, GuestCPUs: 1}
	img, err := image.Build(image.Options{
		RootfsDir: rootfs, OutDir: t.TempDir(), Passphrase: pass,
		Encrypt: func(dst *os.File, src io.Reader, size int64, p []byte) (int64, error) {
			return cryptsetup.FormatLUKS2(dst, src, size, p, fo)
		},
		Config: diskconfig.Config{TEE: "sim", WorkloadID: id, CPUs: 1, RAMMiB: 512, AttestationURL: "http://" + guestBroker},
		// The worst case: the workload knows the admin token.
		Workload: image.Workload{Cmd: []string{"/adminprobe", "http://" + guestBroker}, Env: []string{"PROBE_TOKEN=" + b.Token}},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := simLaunch(t, e, img, b.Addr, 0)
	b.Register(t, id, "sim", launchMeasurement(t, e, o), hostDataOf(img), pass)

	boot := e.Boot(t, o)
	// The admin API was live on its own listener all along.
	req, _ := http.NewRequest(http.MethodGet, b.AdminURL+"/admin/v1/workloads/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+b.Token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b.Stop()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin listener on the host: %d", resp.StatusCode)
	}
	if boot.Status != 0 || !strings.Contains(boot.Console, "adminprobe: no admin API at the attestation address") {
		t.Fatalf("probe status %d (%s), want 0; console:\n%s", boot.Status, boot.Reason, boot.Console)
	}
	for _, p := range []string{"/healthz 200", "/admin/v1/workloads 404", "/metrics 404"} {
		if !strings.Contains(boot.Console, "probe "+p) {
			t.Errorf("console lacks %q", "probe "+p)
		}
	}
	harness.AssertNoSecret(t, pass, map[string]string{"console": boot.Console, "broker log": b.Log.String()})
	harness.AssertNoSecret(t, []byte(b.Token), map[string]string{"console": boot.Console, "broker log": b.Log.String()})
}
