package diskconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// checkKeys refuses a config in which one object names a key twice,
// exactly or in another case. encoding/json fills a field from any
// spelling of its key and the last one wins, while jq, Python and a
// reviewer's eye read the first or the exact one: the config the guest
// acts on must be the one a reviewer reads (HOST_DATA covers the bytes,
// not their meaning).
func checkKeys(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := walkValue(d, ""); err != nil {
		return err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("config: data after the top-level object")
	}
	return nil
}

// walkValue reads one JSON value from d; path names it in errors.
func walkValue(d *json.Decoder, path string) error {
	tok, err := d.Token()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '{':
		seen := map[string]string{}
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return fmt.Errorf("config: %w", err)
			}
			k, _ := kt.(string)
			folded := strings.ToLower(k)
			if prev, dup := seen[folded]; dup {
				return fmt.Errorf("config key %q: given twice in %s (as %q and %q)", path+k, objectName(path), prev, k)
			}
			seen[folded] = k
			if err := walkValue(d, path+k+"."); err != nil {
				return err
			}
		}
	case '[':
		for d.More() {
			if err := walkValue(d, path); err != nil {
				return err
			}
		}
	}
	if _, err := d.Token(); err != nil { // the closing delimiter
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

func objectName(path string) string {
	if path == "" {
		return "the config"
	}
	return fmt.Sprintf("%q", strings.TrimSuffix(path, "."))
}
