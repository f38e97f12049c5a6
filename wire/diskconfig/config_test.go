package diskconfig

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	ok := `{"tee":"snp","tee_data":"{\"gen\":\"milan\"}","workload_id":"w","cpus":2,"ram_mib":512,"attestation_url":"http://127.0.0.1:8000","future":1}`
	c, err := Parse([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if c.TEE != "snp" || c.CPUs != 2 || c.RAMMiB != 512 || c.Dialect() != "krun" {
		t.Fatalf("parsed %+v", c)
	}
	for _, tc := range []struct{ in, want string }{
		{`[]`, "not a JSON object"},
		{`{"tee":"snp"}`, `"tee_data" is missing`},
		{strings.Replace(ok, `"snp"`, `"xyz"`, 1), `unknown TEE "xyz"`},
		{strings.Replace(ok, `"cpus":2`, `"cpus":0`, 1), `"cpus"`},
		{strings.Replace(ok, `"cpus":2`, `"cpus":"2"`, 1), `config:`},
		{strings.Replace(ok, `http://`, `ftp://`, 1), `scheme "ftp"`},
		{strings.Replace(ok, `"http://127.0.0.1:8000"`, `""`, 1), `needs a broker`},
		{strings.Replace(ok, `"future":1`, `"kbs_protocol":"x"`, 1), `"kbs_protocol"`},
		{strings.Replace(ok, `"future":1`, `"kbs_key":"dsa"`, 1), `"kbs_key"`},
		{strings.Replace(ok, `"future":1`, `"kbs_resource":"a/b"`, 1), `not repository/type/tag`},
		{strings.Replace(ok, `"future":1`, `"kbs_resource":"a/../c"`, 1), `segment ".."`},
		{strings.Replace(ok, `"future":1`, `"attest_timeout":"-1s"`, 1), `"attest_timeout"`},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c := &Config{TEE: "none", TEEData: "", WorkloadID: "a<b", CPUs: 1, RAMMiB: 256}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"tee":"none","tee_data":"","workload_id":"a<b","cpus":1`) {
		t.Fatalf("marshal = %s", b)
	}
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"tee":"snp","tee_data":"{}","workload_id":"w","cpus":2,"ram_mib":512,"attestation_url":"http://10.0.2.100:8000"}`))
	f.Add([]byte(`{"tee":"none","tee_data":"","workload_id":"","cpus":1,"ram_mib":64,"attestation_url":""}`))
	f.Add([]byte(boundConfig))
	f.Add([]byte(`{"tee":"none","tee_data":"","workload_id":"","cpus":1,"ram_mib":64,"attestation_url":"","integrity":"verity","verity":{"root_hash":"` + strings.Repeat("0", 64) + `","salt":"","hash_algorithm":"sha256","data_block_size":4096,"hash_block_size":4096,"data_blocks":1,"hash_offset":4096},"overlay_size":"10%"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
	})
}

const boundConfig = `{"tee":"sim","tee_data":"","workload_id":"w","cpus":1,"ram_mib":512,"attestation_url":"http://10.0.2.100:8000",` +
	`"root_volume":{"luks":1,"uuid":"5d6e2c1a-8b3f-4e9d-a1c2-0f1e2d3c4b5a","cipher":"aes-xts-plain64","key_bits":512,"sector_size":512,"payload_offset":2068480,` +
	`"digest":{"hash":"sha256","iterations":1000,"salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","value":"AQIDBAUGBwgJCgsMDQ4PEBESExQ="}},"activation_flags":["no-read-workqueue"]}`

func TestRootVolumeAndFlags(t *testing.T) {
	c, err := Parse([]byte(boundConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.RootVolume == nil || c.RootVolume.Digest.Iterations != 1000 || len(c.RootVolume.Digest.Value) != 20 || c.ActivationFlags[0] != "no-read-workqueue" {
		t.Fatalf("parsed %+v", c)
	}
	for _, tc := range []struct{ edit, want string }{
		{`"luks":1`, `"luks":3`},
		{`"iterations":1000`, `"iterations":0`},
		{`"no-read-workqueue"`, `"allow-everything"`},
	} {
		_, err := Parse([]byte(strings.Replace(boundConfig, tc.edit, tc.want, 1)))
		if err == nil || !(strings.Contains(err.Error(), `"root_volume"`) || strings.Contains(err.Error(), `"activation_flags"`)) {
			t.Errorf("%s: %v", tc.want, err)
		}
	}
}
