package image

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// buildahDisk writes a disk laid out as buildah writes one: a LUKS1 volume,
// zero padding, the config JSON and the KRUN footer.
func buildahDisk(t *testing.T, cfg string) (path string, configStart int64) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	plain := bytes.Repeat([]byte{0x5a}, 1<<20)
	end, err := cryptsetup.FormatLUKS1(f, bytes.NewReader(plain), int64(len(plain)), []byte("pw"), cryptsetup.FormatOptions{GeneratedPassphrase: true})
	if err != nil {
		t.Fatal(err)
	}
	total, err := diskconfig.AppendFooter(f, end, []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(total); err != nil {
		t.Fatal(err)
	}
	return path, total - diskconfig.FooterSize - int64(len(cfg))
}

func TestBindBuildahImage(t *testing.T) {
	const cfg = `{"tee":"snp","tee_data":"{\"gen\":\"milan\"}","workload_id":"wl","cpus":1,"ram_mib":512,"attestation_url":"http://127.0.0.1:8000"}`
	path, start := buildahDisk(t, cfg)
	before, _ := os.ReadFile(path)

	if _, err := Bind(path, BindOptions{Passphrase: []byte("not it")}); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("a wrong passphrase: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatal("a refused bind changed the image")
	}

	res, err := Bind(path, BindOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after[:start], before[:start]) {
		t.Fatal("bind changed bytes before the old config (header or ciphertext)")
	}
	if len(after)%diskconfig.DiskAlign != 0 || len(after) > len(before)+diskconfig.DiskAlign {
		t.Fatalf("image is %d bytes (was %d)", len(after), len(before))
	}
	raw, err := diskconfig.ReadFooterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, res.Config) || !bytes.HasPrefix(raw, []byte(cfg[:len(cfg)-1]+`,"root_volume":{`)) {
		t.Fatalf("footer config %s", raw)
	}
	if res.HostData != sha256.Sum256(raw) {
		t.Fatal("host_data is not the SHA-256 of the new footer config")
	}
	c, err := diskconfig.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cryptsetup.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := cryptsetup.MatchVolume(c.RootVolume, v.Header()); err != nil {
		t.Fatal(err)
	}

	again, err := Bind(path, BindOptions{})
	if err != nil || !again.AlreadyBound || again.HostData != res.HostData {
		t.Fatalf("second bind: %+v, %v", again, err)
	}
}

func TestBindRefusesAnotherVolumesBinding(t *testing.T) {
	const cfg = `{"tee":"sim","tee_data":"","workload_id":"wl","cpus":1,"ram_mib":512,"attestation_url":"http://127.0.0.1:8000"}`
	a, _ := buildahDisk(t, cfg)
	b, _ := buildahDisk(t, cfg)
	ra, err := Bind(a, BindOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// b's footer now carries a's bound config.
	f, err := os.OpenFile(b, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	start := st.Size() - diskconfig.FooterSize - int64(len(cfg))
	total, err := diskconfig.AppendFooter(f, start, ra.Config)
	if err == nil {
		err = f.Truncate(total)
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Bind(b, BindOptions{}); err == nil || !strings.Contains(err.Error(), "already binds another volume") {
		t.Fatalf("got %v", err)
	}
}

func TestAppendKey(t *testing.T) {
	got, err := appendKey([]byte("{}\x00\x00"), "k", map[string]int{"a": 1})
	if err != nil || string(got) != `{"k":{"a":1}}` {
		t.Fatalf("%s %v", got, err)
	}
	if _, err := appendKey([]byte(`[1]`), "k", 1); err == nil {
		t.Fatal("a JSON array was accepted")
	}
}
