package diskconfig

import (
	"strings"
	"testing"
)

const baseJSON = `"tee":"none","tee_data":"","workload_id":"w","cpus":1,"ram_mib":256,"attestation_url":""`

func TestIntegrityKeys(t *testing.T) {
	root := strings.Repeat("ab", 32)
	good := `"integrity":"verity","verity":{"root_hash":"` + root + `","salt":"00ff","hash_algorithm":"sha256","data_block_size":4096,"hash_block_size":4096,"data_blocks":100,"hash_offset":409600}`
	c, err := Parse([]byte("{" + baseJSON + "," + good + `,"overlay_size":"64m"}`))
	if err != nil {
		t.Fatal(err)
	}
	r, salt, err := c.Verity.Decode()
	if err != nil || c.Verity.DataBlocks != 100 || len(r) != 32 || string(salt) != "\x00\xff" || c.Overlay() != "64m" {
		t.Fatalf("%+v %x %x %v", c.Verity, r, salt, err)
	}
	// The config round-trips through Marshal with the same keys.
	raw, _ := c.Marshal()
	if _, err := Parse(raw); err != nil || !strings.Contains(string(raw), `"root_hash":"`+root) {
		t.Fatalf("marshal: %s %v", raw, err)
	}
	for _, tc := range []struct{ json, want string }{
		{`"integrity":"dm-integrity"`, `"integrity": "dm-integrity" is not none or verity`},
		{`"integrity":"verity"`, `"verity" is missing`},
		{`"verity":{}`, `"verity" is set but "integrity" is ""`},
		{`"overlay_size":"64m"`, "applies to a verity root only"},
		{strings.Replace(good, root, "AB"+root[2:], 1), "verity.root_hash"},
		{strings.Replace(good, `"00ff"`, `"0g"`, 1), "verity.salt"},
		{strings.Replace(good, "sha256", "sha1", 1), `hash algorithm "sha1"`},
		{strings.Replace(good, `"data_block_size":4096`, `"data_block_size":3000`, 1), "data block size 3000"},
		{strings.Replace(good, `"data_blocks":100`, `"data_blocks":0`, 1), "data blocks: 0"},
		{strings.Replace(good, "409600", "4096", 1), "verity.hash_offset"},
		{strings.Replace(good, "409600", "409601", 1), "hash offset 409601"},
		{good + `,"overlay_size":"1t"`, `"overlay_size": "1t"`},
		{good + `,"overlay_size":"101%"`, `"overlay_size": "101%"`},
	} {
		_, err := Parse([]byte("{" + baseJSON + "," + tc.json + "}"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.json, err, tc.want)
		}
	}
	if c, err := Parse([]byte("{" + baseJSON + "}")); err != nil || c.Integrity != "" || c.Verity != nil {
		t.Fatalf("an old config: %+v %v", c, err)
	}
}
