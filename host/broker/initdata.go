package broker

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/BurntSushi/toml"

	"github.com/sealroot/sealroot/internal/textclip"
	"github.com/sealroot/sealroot/wire/kbs"
)

// initDataDoc is Trustee's init-data TOML document: a version, the digest
// algorithm and a table of string values, all three required.
type initDataDoc struct {
	Version   *string            `toml:"version"`
	Algorithm *string            `toml:"algorithm"`
	Data      *map[string]string `toml:"data"`
}

// parseInitData checks the init-data member of a Trustee /attest body as
// Trustee's KBS checks it and returns its digest (nil when the member is
// absent or null): the envelope, format and size rules of
// kbs.DecodeInitData, then a body that parses as TOML with a string
// version, an algorithm and a [data] table of strings, and the digest of
// kbs.InitDataDigest under that algorithm. The wire package keeps no TOML
// parser; reading the document is the broker's part.
func parseInitData(raw json.RawMessage) ([]byte, error) {
	d, err := kbs.DecodeInitData(raw)
	if err != nil || d == nil {
		return nil, err
	}
	var doc initDataDoc
	if _, err := toml.Decode(d.Body, &doc); err != nil {
		return nil, fmt.Errorf("init-data: body is not TOML: %s", textclip.Clip(err.Error(), 40))
	}
	switch {
	case doc.Version == nil:
		return nil, errors.New("init-data: body has no version string")
	case doc.Algorithm == nil:
		return nil, errors.New("init-data: body has no algorithm")
	case doc.Data == nil:
		return nil, errors.New("init-data: body has no [data] table")
	}
	return kbs.InitDataDigest(*doc.Algorithm, d.Body)
}
