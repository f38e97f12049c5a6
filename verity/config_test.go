package verity

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/wire/diskconfig"
)

// TestFromConfig: the config's tree description becomes the parameters the
// tree code uses and back, and the limits the wire package states are this
// package's own.
func TestFromConfig(t *testing.T) {
	if MaxSaltSize != diskconfig.MaxVeritySalt || DefaultAlgorithm != diskconfig.VerityHashAlgorithm {
		t.Fatalf("salt %d / %d, algorithm %s / %s", MaxSaltSize, diskconfig.MaxVeritySalt, DefaultAlgorithm, diskconfig.VerityHashAlgorithm)
	}
	v := &diskconfig.Verity{RootHash: strings.Repeat("ab", 32), Salt: "00ff", HashAlgorithm: "sha256",
		DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 100, HashOffset: 409600}
	p, root, err := FromConfig(v)
	if err != nil || p.DataBlocks != 100 || p.HashStartBlock() != 101 || len(root) != 32 || !bytes.Equal(p.Salt, []byte{0, 0xff}) {
		t.Fatalf("%+v %x %v", p, root, err)
	}
	if back := ToConfig(p, root); *back != *v {
		t.Fatalf("round trip: %+v", back)
	}
	bad := *v
	bad.HashOffset = 4096
	if _, _, err := FromConfig(&bad); err == nil || !strings.Contains(err.Error(), "verity.hash_offset") {
		t.Fatalf("hash offset inside the data: %v", err)
	}
}

// TestConfigRulesMatchCheck: over a grid of values, the wire package's
// rules accept a tree description exactly when Check accepts the
// parameters it describes (with the hash area after the data, which only
// the config requires).
func TestConfigRulesMatchCheck(t *testing.T) {
	n := 0
	for _, alg := range []string{"sha256", "sha1"} {
		for _, dbs := range []int{0, 256, 512, 1000, 4096, 8192} {
			for _, hbs := range []int{512, 3000, 4096} {
				for _, blocks := range []uint64{0, 1, 100, 1 << 62} {
					for _, off := range []int64{-4096, 0, 409600, 409601, 1 << 40} {
						for _, salt := range []int{0, 256, 257} {
							v := &diskconfig.Verity{RootHash: strings.Repeat("00", 32), Salt: strings.Repeat("aa", salt), HashAlgorithm: alg,
								DataBlockSize: dbs, HashBlockSize: hbs, DataBlocks: blocks, HashOffset: off}
							_, _, wireErr := v.Decode()
							p := Params{HashType: 1, Algorithm: alg, DataBlockSize: dbs, HashBlockSize: hbs, DataBlocks: blocks,
								Salt: make([]byte, salt), HashOffset: off}
							checkErr := p.Check()
							if checkErr == nil && off < p.DataSize() {
								checkErr = errDataOverlap
							}
							if (wireErr == nil) != (checkErr == nil) {
								j, _ := json.Marshal(v)
								t.Errorf("%s: wire %v, Check %v", j, wireErr, checkErr)
							}
							n++
						}
					}
				}
			}
		}
	}
	t.Logf("%d descriptions compared", n)
}

// errDataOverlap stands for the config-only rule: the hash area lies after
// the data.
var errDataOverlap = errors.New("hash area overlaps the data")
