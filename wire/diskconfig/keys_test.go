package diskconfig

import (
	"strings"
	"testing"
)

// A key given twice, or again in another case, is refused: encoding/json
// would act on the last spelling while a reviewer reads the first.
func TestParseRefusesRepeatedKeys(t *testing.T) {
	base := `"tee":"none","tee_data":"","workload_id":"w","cpus":1,"ram_mib":64`
	for name, tc := range map[string]struct{ json, key string }{
		"exact duplicate":   {`{` + base + `,"attestation_url":"","attestation_url":"http://10.0.2.100:8000"}`, `"attestation_url"`},
		"other case":        {`{` + base + `,"attestation_url":"","ATTESTATION_URL":"http://evil"}`, `"ATTESTATION_URL"`},
		"binding cancelled": {`{` + base + `,"attestation_url":"","root_volume":{"luks":2},"Root_Volume":null}`, `"Root_Volume"`},
		"nested":            {`{` + base + `,"attestation_url":"","verity":{"salt":"","Salt":"00"}}`, `"verity.Salt"`},
	} {
		_, err := Parse([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.key)
		}
	}
	if _, err := Parse([]byte(`{` + base + `,"attestation_url":""}`)); err != nil {
		t.Fatalf("a config without repeated keys: %v", err)
	}
	if _, err := Parse([]byte(`{` + base + `,"attestation_url":""} {}`)); err == nil {
		t.Error("data after the object was accepted")
	}
}
