package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// BindOptions tune Bind.
type BindOptions struct {
	// Passphrase, when set, is checked first: it must open the volume to
	// the key the binding names, and the payload must hold a filesystem.
	// The caller wipes it.
	Passphrase []byte
}

// BindResult is what Bind did.
type BindResult struct {
	// Config is the new footer config JSON (root_volume added); its
	// SHA-256 is the HOST_DATA to register.
	Config   []byte
	HostData [32]byte
	Volume   *diskconfig.VolumeID
	// AlreadyBound says the config already bound this volume; nothing was
	// written.
	AlreadyBound bool
}

// Bind adds a root_volume binding to the config in the KRUN footer of a
// LUKS disk image made by another tool (buildah), so that the guest init
// refuses any other volume (docs/threat-model.md). The config's other
// bytes are kept as they are and the binding is appended as the last key;
// only the config and footer are rewritten, after the last byte of the old
// config's start, so the header and the ciphertext are never touched. The
// image grows by at most a page.
func Bind(path string, o BindOptions) (*BindResult, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("finding the size of %s: %w", path, err)
	}
	raw, err := diskconfig.ReadFooter(f, size)
	if err != nil {
		return nil, fmt.Errorf("footer of %s: %w", path, err)
	}
	cfg, err := diskconfig.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("footer config of %s: %w", path, err)
	}
	// Everything before the old config (header, ciphertext, padding) stays.
	keep := size - diskconfig.FooterSize - int64(len(raw))
	id, err := cryptsetup.ReadVolumeID(f, keep)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.RootVolume != nil {
		if reflect.DeepEqual(cfg.RootVolume, id) {
			return &BindResult{Config: raw, HostData: diskconfig.HostData(raw), Volume: id, AlreadyBound: true}, nil
		}
		return nil, fmt.Errorf("%s: the config already binds another volume (uuid %s; this header's is %s)", path, cfg.RootVolume.UUID, id.UUID)
	}
	if o.Passphrase != nil {
		v, err := cryptsetup.Open(path)
		if err != nil {
			return nil, err
		}
		_, err = v.Check(o.Passphrase, cryptsetup.UnlockOptions{VolumeID: id})
		v.Close()
		if err != nil {
			return nil, fmt.Errorf("checking the passphrase before binding: %w", err)
		}
	}
	bound, err := appendKey(raw, "root_volume", id)
	if err != nil {
		return nil, fmt.Errorf("footer config of %s: %w", path, err)
	}
	check, err := diskconfig.Parse(bound)
	if err != nil || !reflect.DeepEqual(check.RootVolume, id) {
		return nil, fmt.Errorf("footer config of %s: the bound config does not read back (%w)", path, err)
	}
	total, err := diskconfig.AppendFooter(f, keep, bound)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(total); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	return &BindResult{Config: bound, HostData: diskconfig.HostData(bound), Volume: id}, f.Close()
}

// appendKey adds "key": value as the last member of the JSON object raw,
// leaving every other byte as it was.
func appendKey(raw []byte, key string, value any) ([]byte, error) {
	obj := bytes.TrimRight(raw, " \t\r\n\x00")
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return nil, errors.New("not a JSON object")
	}
	var v bytes.Buffer
	enc := json.NewEncoder(&v)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(value); err != nil {
		return nil, err
	}
	k, _ := json.Marshal(key)
	out := bytes.Clone(obj[:len(obj)-1])
	if len(bytes.TrimSpace(obj[1:len(obj)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, bytes.TrimSpace(v.Bytes())...)
	return append(out, '}'), nil
}
