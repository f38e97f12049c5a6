package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// refAnnotation names an image in an OCI layout's index.
const refAnnotation = "org.opencontainers.image.ref.name"

// LoadOCI opens the image named ref (or the only image when ref is empty) in
// an OCI image layout directory, as `skopeo copy ... oci:DIR:REF` and
// `buildah push IMG oci:DIR:REF` write it.
func LoadOCI(dir, ref string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("opening OCI layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading index of %s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index of %s: %w", dir, err)
	}
	var found []v1.Descriptor
	var names []string
	for _, d := range m.Manifests {
		name := d.Annotations[refAnnotation]
		names = append(names, name)
		if ref == "" || name == ref {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && ref != "":
		return nil, fmt.Errorf("no image %q in %s (it has %q)", ref, dir, names)
	case len(found) == 0:
		return nil, fmt.Errorf("%s holds no image", dir)
	case len(found) > 1:
		return nil, fmt.Errorf("%s holds %d images %q: name one as DIR:REF", dir, len(found), names)
	}
	d := found[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		cm, err := child.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, c := range cm.Manifests {
			if c.Platform == nil || (c.Platform.OS == "linux" && c.Platform.Architecture == "amd64") {
				return child.Image(c.Digest)
			}
		}
		return nil, fmt.Errorf("image %q in %s has no linux/amd64 manifest", ref, dir)
	}
	return idx.Image(d.Digest)
}

// OCIConfig returns the image's config file JSON exactly as stored: buildah
// writes this whole document to /.krun_config.json.
func OCIConfig(img v1.Image) ([]byte, *v1.ConfigFile, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("reading image config: %w", err)
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(raw, &cf); err != nil {
		return nil, nil, fmt.Errorf("decoding image config: %w", err)
	}
	return raw, &cf, nil
}

// ExtractOCI flattens the image's layers (whiteouts applied) into dest,
// which must be an empty directory. Every path is resolved inside dest with
// os.Root, so a hostile layer cannot write outside it through "..", an
// absolute path or a symlink.
func ExtractOCI(img v1.Image, dest string) error {
	rc := mutate.Extract(img)
	defer rc.Close()
	return extractTar(rc, dest)
}

func extractTar(r io.Reader, dest string) error {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	type dirMode struct {
		name string
		mode os.FileMode
	}
	var dirs []dirMode
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading layer tar: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "/"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			continue
		}
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("layer entry %s: creating its directory: %w", name, err)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", name, err)
			}
			dirs = append(dirs, dirMode{name, fileMode(h)})
		case tar.TypeReg:
			root.Remove(name)
			f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("creating %s: %w", name, err)
			}
			_, err = io.Copy(f, tr) //nolint:gosec // the layers are of the image the operator builds from: its contents become the workload
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("writing %s: %w", name, err)
			}
			if err := root.Chmod(name, fileMode(h)); err != nil {
				return err
			}
		case tar.TypeSymlink:
			root.Remove(name)
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("creating symlink %s: %w", name, err)
			}
		case tar.TypeLink:
			target := path.Clean(strings.TrimPrefix(h.Linkname, "/"))
			root.Remove(name)
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("creating hard link %s: %w", name, err)
			}
		default:
			continue // devices and fifos: containers get /dev from the init
		}
		if os.Geteuid() == 0 {
			if err := root.Lchown(name, h.Uid, h.Gid); err != nil {
				return fmt.Errorf("setting the owner of %s: %w", name, err)
			}
		}
	}
	// Directory modes last, so a read-only directory does not block its
	// own contents.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].name, dirs[i].mode); err != nil {
			return fmt.Errorf("setting the mode of %s: %w", dirs[i].name, err)
		}
	}
	return nil
}

func fileMode(h *tar.Header) os.FileMode {
	m := os.FileMode(h.Mode).Perm()
	if h.Mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}
