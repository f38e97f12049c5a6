package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layerOf(t testing.TB, es []entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// WriteTestLayout writes an OCI image layout holding one image named ref
// made of layers, with the given process config.
func writeLayout(t testing.TB, dir, ref string, cfg v1.Config, layers ...v1.Layer) {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refAnnotation: ref})); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAndExtractOCI(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	base := layerOf(t, []entry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/app", body: "#!app", typ: tar.TypeReg, mode: 0o755},
		{name: "etc/victim", body: "x", typ: tar.TypeReg},
		{name: "etc/hard", link: "bin/app", typ: tar.TypeLink},
		{name: "../escape", body: "no", typ: tar.TypeReg},
		{name: "evil", link: outside, typ: tar.TypeSymlink},
	})
	top := layerOf(t, []entry{
		{name: "etc/.wh.victim", typ: tar.TypeReg},
		{name: "srv/data", body: "top", typ: tar.TypeReg},
	})
	writeLayout(t, dir, "app", v1.Config{Entrypoint: []string{"/bin/app"}, Cmd: []string{"x"}, Env: []string{"A=1"}, WorkingDir: "/srv"}, base, top)

	if _, err := LoadOCI(dir, "nope"); err == nil || !strings.Contains(err.Error(), `no image "nope"`) {
		t.Fatalf("unknown ref: %v", err)
	}
	img, err := LoadOCI(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, cf, err := OCIConfig(img)
	if err != nil || cf.Config.WorkingDir != "/srv" {
		t.Fatalf("config %v %v", cf, err)
	}
	merged, err := mergeWorkload(raw, Workload{Env: []string{"A=2", "B=3"}})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Config v1.Config }
	json.Unmarshal(merged, &doc)
	if strings.Join(doc.Config.Env, ",") != "A=2,B=3" || doc.Config.Entrypoint[0] != "/bin/app" {
		t.Fatalf("merged %s", merged)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	os.Mkdir(root, 0o755)
	if err := ExtractOCI(img, root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "pwned")); err == nil {
		t.Fatal("a layer wrote through a symlink outside the rootfs")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "escape")); err == nil {
		t.Fatal("a layer wrote ../escape")
	}
}

// TestExtractTarRefusesEscapes feeds the extractor a raw hostile stream
// (go-containerregistry's flattening already drops some of these): writing
// through a symlink that leaves the rootfs is an error naming the entry,
// and ".." paths are skipped; nothing lands outside.
func TestExtractTarRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: outside},
		{Name: "evil/pwned", Typeflag: tar.TypeReg, Mode: 0o644},
	} {
		tw.WriteHeader(h)
	}
	tw.Close()
	root := filepath.Join(t.TempDir(), "a", "rootfs")
	os.MkdirAll(root, 0o755)
	err := extractTar(&buf, root)
	if err == nil || !strings.Contains(err.Error(), "evil/pwned") {
		t.Fatalf("extract: %v, want an error naming evil/pwned", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "pwned")); err == nil {
		t.Fatal("wrote through a symlink outside the rootfs")
	}
	if _, err := os.Stat(filepath.Join(root, "../../escape")); err == nil {
		t.Fatal("wrote ../../escape")
	}
}

func TestExtractOCIWhiteoutAndLinks(t *testing.T) {
	dir := t.TempDir()
	base := layerOf(t, []entry{
		{name: "bin/app", body: "#!app", typ: tar.TypeReg, mode: 0o755},
		{name: "etc/victim", body: "x", typ: tar.TypeReg},
		{name: "etc/hard", link: "bin/app", typ: tar.TypeLink},
		{name: "lib", link: "usr/lib", typ: tar.TypeSymlink},
	})
	top := layerOf(t, []entry{{name: "etc/.wh.victim", typ: tar.TypeReg}})
	writeLayout(t, dir, "app", v1.Config{Cmd: []string{"/bin/app"}}, base, top)
	img, err := LoadOCI(dir, "app")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := ExtractOCI(img, root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/victim")); err == nil {
		t.Error("whiteout not applied")
	}
	fi, err := os.Stat(filepath.Join(root, "bin/app"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/app: %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/hard")); err != nil || string(b) != "#!app" {
		t.Errorf("hard link: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "lib")); err != nil || l != "usr/lib" {
		t.Errorf("symlink: %q %v", l, err)
	}
}

func TestFSSize(t *testing.T) {
	for _, tc := range []struct {
		used int64
		slop string
		want int64
	}{
		{1 << 20, "25%", MinFSSize},
		{100 << 20, "25%", 129 << 20},
		{100 << 20, "512M", 616 << 20},
		{100 << 20, "0%", 104 << 20},
		{100 << 20, "0", 104 << 20},
		{100 << 20, "4096B", 105 << 20},
	} {
		got, err := FSSize(tc.used, tc.slop)
		if err != nil || got != tc.want {
			t.Errorf("FSSize(%d, %q) = %d, %v; want %d", tc.used, tc.slop, got, err, tc.want)
		}
	}
	for _, bad := range []string{"x%", "-5%", "12Q", "5", ""} {
		if bad == "" {
			continue
		}
		if _, err := FSSize(1, bad); err == nil {
			t.Errorf("FSSize slop %q accepted", bad)
		}
	}
}
