package tests

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/tests/harness"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

// hostDisk is the attacking host's own encrypted disk: its own passphrase,
// its own program as the workload (/hello 66), and then the tenant's footer
// config bytes copied onto it unchanged. forge also copies the tenant's
// volume-key digest fields and UUID into its LUKS1 header, so that the
// header matches the tenant's binding field for field.
func hostDisk(t *testing.T, e *harness.Env, tenant *image.Result, c attestedCase, forge bool) (*image.Result, []byte) {
	t.Helper()
	pass := []byte("the-hosts-own-passphrase-0123456789abcdef")
	format := cryptsetup.FormatLUKS2
	if c.luks1 {
		format = cryptsetup.FormatLUKS1
	}
	fo := cryptsetup.FormatOptions{GeneratedPassphrase: true, GuestRAMMiB: 512, GuestCPUs: 1}
	img, err := image.Build(image.Options{
		RootfsDir: e.HelloRootfs(t), OutDir: t.TempDir(), Passphrase: pass,
		Encrypt: func(dst *os.File, src io.Reader, size int64, p []byte) (int64, error) {
			return format(dst, src, size, p, fo)
		},
		Config:   *tenant.Config,
		Workload: image.Workload{Cmd: []string{"/hello", "66"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img.Disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	start := st.Size() - diskconfig.FooterSize - int64(len(img.ConfigJSON))
	total, err := diskconfig.AppendFooter(f, start, tenant.ConfigJSON)
	if err == nil {
		err = f.Truncate(total)
	}
	if err != nil {
		t.Fatal(err)
	}
	if forge {
		src, err := os.ReadFile(tenant.Disk)
		if err != nil {
			t.Fatal(err)
		}
		// LUKS1: mk_digest, its salt and iterations (bytes 112-168), UUID (168-208).
		if _, err := f.WriteAt(src[112:208], 112); err != nil {
			t.Fatal(err)
		}
	}
	img.ConfigJSON = tenant.ConfigJSON
	return img, pass
}

// TestDiskSwapRefused is the disk-swap attack with nothing but sealroot's
// own tools: the tenant's image is registered at the real broker; the host
// puts the tenant's footer config on its own LUKS disk, runs a second
// `sealroot broker` that hands out its own passphrase for the tenant's
// workload id with the tenant's measurement and host_data, and launches
// the genuine kernel and initrd against that broker. The launch carries the
// tenant's HOST_DATA, so every check of the handshake would pass: the
// root_volume binding in the config is what refuses it. The host's program
// never starts.
func TestDiskSwapRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      attestedCase
		forge  bool
		status int
		phase  string
		msg    string
	}{
		{"krun LUKS1", attestedCase{dialect: "krun", luks1: true}, false, event.StatusVolumeMismatch, "payload", "LUKS UUID"},
		{"trustee LUKS2", attestedCase{dialect: "trustee"}, false, event.StatusVolumeMismatch, "payload", "LUKS UUID"},
		// The header forged to match the binding: the host's passphrase
		// opens the host's key, which the bound digest refuses.
		{"krun LUKS1 forged header", attestedCase{dialect: "krun", luks1: true, timeout: "30s"}, true, event.StatusUnlockFailed, "unlock", "no keyslot opens to the bound volume key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := harness.Setup(t)
			id := "e2e-swap-" + strings.ReplaceAll(tc.name, " ", "-")
			tenant, tenantPass := encryptedImage(t, e, id, tc.c)
			if tenant.Config.RootVolume == nil {
				t.Fatal("image build recorded no root_volume binding")
			}
			real := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
			defer real.Stop()
			// (TestAttestedBoot boots such images with the real broker.)

			swapped, hostPass := hostDisk(t, e, tenant, tc.c, tc.forge)
			rogue := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
			o := simLaunch(t, e, swapped, rogue.Addr, 0)
			m := launchMeasurement(t, e, o)
			register(t, real, id, tenant, m, tenantPass)
			rogue.Register(t, id, "sim", m, hostDataOf(tenant), hostPass)
			b := e.Boot(t, o)
			rogue.Stop()
			if b.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", b.Status, b.Reason, tc.status)
			}
			ev, ok := b.Error()
			if !ok || ev.Phase != tc.phase || !strings.Contains(ev.Message, tc.msg) {
				t.Fatalf("error event %+v, want phase %s naming %q", ev, tc.phase, tc.msg)
			}
			if strings.Contains(b.Console, "hello from the workload") {
				t.Fatal("the host's program ran")
			}
			if n := strings.Count(b.Console, "sealroot: "+tc.phase+" failed"); n != 1 {
				t.Errorf("%d console lines name the failure, want 1", n)
			}
			if tc.phase == "payload" {
				if _, ok := b.Phase("attest"); ok || strings.Contains(rogue.Log.String(), "/kbs/v0/auth") {
					t.Error("the guest talked to a broker before refusing the volume")
				}
			}
			harness.AssertNoSecret(t, tenantPass, map[string]string{"console": b.Console, "broker log": rogue.Log.String()})
			harness.AssertNoSecret(t, hostPass, map[string]string{"console": b.Console})

		})
	}
}

// TestRootVolumeInHostData: the images TestAttestedBoot boots (the
// tenant's own boots, krun and Trustee, LUKS1 and LUKS2) carry the binding
// inside the bytes HOST_DATA covers, and it matches their volume.
func TestRootVolumeInHostData(t *testing.T) {
	e := harness.Setup(t)
	img, _ := encryptedImage(t, e, "e2e-hd", attestedCase{})
	if !bytes.Contains(img.ConfigJSON, []byte(`"root_volume":{`)) {
		t.Fatalf("footer config without root_volume: %s", img.ConfigJSON)
	}
	c, err := diskconfig.Parse(img.ConfigJSON)
	if err != nil || c.RootVolume == nil {
		t.Fatal(err)
	}
	v, err := cryptsetup.Open(img.Disk)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := cryptsetup.MatchVolume(c.RootVolume, v.Header()); err != nil {
		t.Fatal(err)
	}
}

// TestImageBindRegister: a buildah-style image (six-key config, no
// binding) registered by measurement alone gets bound with `sealroot image
// bind --register`: the footer then names the volume, and the broker's
// registration requires the new config's host_data.
func TestImageBindRegister(t *testing.T) {
	e := harness.Setup(t)
	img, _ := encryptedImage(t, e, "cli-bind", attestedCase{luks1: true})
	buildah := []byte(`{"tee":"sim","tee_data":"","workload_id":"cli-bind","cpus":1,"ram_mib":512,"attestation_url":"http://10.0.2.100:8000"}`)
	f, err := os.OpenFile(img.Disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	total, err := diskconfig.AppendFooter(f, st.Size()-diskconfig.FooterSize-int64(len(img.ConfigJSON)), buildah)
	if err == nil {
		err = f.Truncate(total)
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
	b.Register(t, "cli-bind", "sim", [48]byte{1}, nil, []byte("pass"))
	token := harness.WriteFile(t, "admin-token", []byte(b.Token), 0o600)

	cmd := exec.Command(e.Sealroot(t), "image", "bind", img.Disk, "--register", "--broker", b.URL, "--admin-token-file", token)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("image bind: %v", err)
	}
	raw, err := diskconfig.ReadFooterFile(img.Disk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, buildah[:len(buildah)-1]) || !bytes.Contains(raw, []byte(`"root_volume":`)) {
		t.Fatalf("footer config after bind: %s", raw)
	}
	hd := diskconfig.HostData(raw)
	want := hex.EncodeToString(hd[:])
	if strings.TrimSpace(string(out)) != "host_data: "+want {
		t.Fatalf("printed %q, want host_data %s", out, want)
	}
	cl, err := broker.NewAdminClient(b.URL, b.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cl.Show(context.Background(), "cli-bind")
	if err != nil {
		t.Fatal(err)
	}
	if w.Policy.HostData != want || len(w.Policy.Measurements) != 1 || !w.HasPassphrase {
		t.Fatalf("registration after bind: %+v", w.Policy)
	}
}
