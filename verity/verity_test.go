package verity

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// veritysetup returns the path of the real tool; missing it fails under
// CI (make deps installs it) and skips elsewhere.
func veritysetup(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("veritysetup")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("veritysetup not installed (make deps installs cryptsetup-bin)")
		}
		t.Skip("veritysetup not installed (run make deps)")
	}
	return p
}

func randomFile(t *testing.T, dir string, size int64) string {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(dir, fmt.Sprintf("data-%d", size))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// TestVeritysetupVerifiesOurTrees builds trees of one to four levels,
// in a separate hash file and appended to the data, and has the real
// veritysetup verify each with the root hash Build returned.
func TestVeritysetupVerifiesOurTrees(t *testing.T) {
	vs := veritysetup(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		blocks    uint64
		dataBlock int
		hashBlock int
		appended  bool
	}{
		{1, 4096, 4096, false},   // no level: the root is the data block's hash
		{2, 4096, 4096, true},    // one level
		{128, 4096, 4096, false}, // exactly one full hash block
		{129, 4096, 4096, true},  // two levels
		{300, 4096, 512, false},  // 16 digests per 512-byte hash block: three levels
		{4100, 512, 512, true},   // four levels
	} {
		t.Run(fmt.Sprintf("%dx%d hash %d appended=%v", tc.blocks, tc.dataBlock, tc.hashBlock, tc.appended), func(t *testing.T) {
			size := int64(tc.blocks) * int64(tc.dataBlock)
			data := randomFile(t, dir, size)
			salt := make([]byte, 17) // an odd salt length on purpose
			rand.Read(salt)
			p := Params{HashType: 1, Algorithm: "sha256", DataBlockSize: tc.dataBlock, HashBlockSize: tc.hashBlock, DataBlocks: tc.blocks, Salt: salt}
			hashPath := filepath.Join(dir, "hash")
			if tc.appended {
				hashPath = data
				p.HashOffset = (size + int64(tc.hashBlock) - 1) / int64(tc.hashBlock) * int64(tc.hashBlock)
			}
			os.Remove(filepath.Join(dir, "hash"))
			df, _ := os.Open(data)
			defer df.Close()
			hf, err := os.OpenFile(hashPath, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer hf.Close()
			root, err := Build(df, hf, p, BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if fi, _ := hf.Stat(); fi.Size() != p.HashOffset+p.HashAreaSize() {
				t.Errorf("hash area ends at %d, want %d", fi.Size(), p.HashOffset+p.HashAreaSize())
			}
			args := []string{"verify", data, hashPath, hex.EncodeToString(root)}
			if tc.appended {
				args = append(args, "--hash-offset="+strconv.FormatInt(p.HashOffset, 10))
			}
			if out, err := run(t, vs, args...); err != nil {
				t.Fatalf("veritysetup verify refused our tree: %v\n%s", err, out)
			}
			if err := Verify(df, hf, p, root); err != nil {
				t.Fatalf("our own verifier: %v", err)
			}
			if err := CheckRoot(df, hf, p, root); err != nil {
				t.Fatalf("CheckRoot: %v", err)
			}
			// A tampered data block: both verifiers refuse it, ours names it.
			bad := tc.blocks / 2
			flipBit(t, data, int64(bad)*int64(tc.dataBlock)+5)
			if out, err := run(t, vs, args...); err == nil {
				t.Fatalf("veritysetup verify accepted a flipped bit:\n%s", out)
			}
			var me *MismatchError
			err = Verify(df, hf, p, root)
			if tc.blocks == 1 {
				if !errors.Is(err, ErrRootMismatch) {
					t.Fatalf("one-block device with a flipped bit: %v, want ErrRootMismatch", err)
				}
				return
			}
			if !errors.As(err, &me) || me.Level != -1 || me.Block != bad {
				t.Fatalf("Verify after flipping data block %d: %v", bad, err)
			}
		})
	}
}

func flipBit(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 1
	f.WriteAt(b, off)
}

var rootRe = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)`)

// TestWeVerifyVeritysetupTrees has the real veritysetup format trees and
// checks that our verifier accepts them from their superblock alone, that
// our builder computes the same root from the same salt, and that a
// damaged hash block is named.
func TestWeVerifyVeritysetupTrees(t *testing.T) {
	vs := veritysetup(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		blocks int64
		extra  []string
	}{
		{1, nil},
		{200, nil},
		{1000, []string{"--hash-block-size=1024", "--salt=00112233"}},
		{300, []string{"--data-block-size=512", "--hash-block-size=512", "--salt=-"}}, // no salt
	} {
		t.Run(fmt.Sprint(tc.blocks, tc.extra), func(t *testing.T) {
			dbs := int64(4096)
			if len(tc.extra) > 0 && tc.extra[0] == "--data-block-size=512" {
				dbs = 512
			}
			data := randomFile(t, dir, tc.blocks*dbs)
			hashPath := filepath.Join(dir, "vhash")
			os.Remove(hashPath)
			out, err := run(t, vs, append([]string{"format", data, hashPath}, tc.extra...)...)
			if err != nil {
				t.Fatalf("veritysetup format: %v\n%s", err, out)
			}
			m := rootRe.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no root hash in:\n%s", out)
			}
			root, _ := hex.DecodeString(m[1])
			hf, _ := os.OpenFile(hashPath, os.O_RDWR, 0)
			defer hf.Close()
			df, _ := os.Open(data)
			defer df.Close()
			sb, err := ReadSuperblock(hf, 0)
			if err != nil {
				t.Fatal(err)
			}
			p := sb.Params(0)
			if err := Verify(df, hf, p, root); err != nil {
				t.Fatalf("our verifier refused veritysetup's tree: %v", err)
			}
			if !bytes.Contains([]byte(out), []byte(sb.UUIDString())) {
				t.Errorf("UUID %s not in veritysetup's output", sb.UUIDString())
			}
			// The same data and salt give the same root and the same bytes.
			var mine bytes.Buffer
			w := &bufWriterAt{&mine}
			got, err := Build(df, w, p, BuildOptions{UUID: sb.UUID})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, root) {
				t.Fatalf("our root %x, veritysetup's %x", got, root)
			}
			theirs, _ := os.ReadFile(hashPath)
			if !bytes.Equal(mine.Bytes(), theirs[:mine.Len()]) {
				t.Fatal("our hash area differs from veritysetup's")
			}
			if p.Levels() == 0 {
				return
			}
			// Damage the lowest level's first hash block.
			starts, _, _ := p.layout()
			off := p.TreeOffset() + int64(starts[0])*int64(p.HashBlockSize) + 3
			flipBit(t, hashPath, off)
			var me *MismatchError
			if err := Verify(df, hf, p, root); !errors.As(err, &me) {
				t.Fatalf("a damaged hash block: %v", err)
			}
		})
	}
}

type bufWriterAt struct{ b *bytes.Buffer }

func (w *bufWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if need := int(off) + len(p); need > w.b.Len() {
		w.b.Write(make([]byte, need-w.b.Len()))
	}
	copy(w.b.Bytes()[off:], p)
	return len(p), nil
}

func TestWrongRoot(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 4096*10)
	p, err := NewParams(int64(len(data)), 0)
	if err != nil {
		t.Fatal(err)
	}
	var h bytes.Buffer
	w := &bufWriterAt{&h}
	root, err := Build(bytes.NewReader(data), w, p, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := append([]byte(nil), root...)
	other[0] ^= 0x80
	if err := Verify(bytes.NewReader(data), bytes.NewReader(h.Bytes()), p, other); !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("Verify with another root: %v", err)
	}
	if err := CheckRoot(bytes.NewReader(data), bytes.NewReader(h.Bytes()), p, other); !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("CheckRoot with another root: %v", err)
	}
	// Another salt is another tree.
	p2 := p
	p2.Salt = append([]byte{1}, p.Salt[1:]...)
	if err := CheckRoot(bytes.NewReader(data), bytes.NewReader(h.Bytes()), p2, root); !errors.Is(err, ErrRootMismatch) && p.Salt[0] != 1 {
		t.Fatalf("CheckRoot with another salt: %v", err)
	}
}

func TestParams(t *testing.T) {
	good := Params{HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 1}
	for _, tc := range []struct {
		mod  func(*Params)
		want string
	}{
		{func(p *Params) { p.HashType = 0 }, "hash type"},
		{func(p *Params) { p.Algorithm = "sha1" }, "sha1"},
		{func(p *Params) { p.DataBlockSize = 8192 }, "data block size"},
		{func(p *Params) { p.HashBlockSize = 1000 }, "hash block size"},
		{func(p *Params) { p.DataBlocks = 0 }, "data blocks"},
		{func(p *Params) { p.Salt = make([]byte, 257) }, "salt"},
		{func(p *Params) { p.HashOffset = 100 }, "hash offset"},
	} {
		p := good
		tc.mod(&p)
		if err := p.Check(); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%+v: %v, want an error naming %q", p, err, tc.want)
		}
	}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewParams(4097, 0); err == nil {
		t.Error("a data size that is not a block multiple was accepted")
	}
}

func TestSuperblockErrors(t *testing.T) {
	sb := Superblock{HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 9, Salt: []byte{1, 2, 3}}
	good, err := sb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSuperblock(good)
	if err != nil || back.DataBlocks != 9 || !bytes.Equal(back.Salt, sb.Salt) || back.Algorithm != "sha256" {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for _, tc := range []struct {
		off  int
		val  byte
		want string
	}{
		{0, 'x', "signature"},
		{8, 2, "version"},
		{12, 0, "hash type"},
		{32, 'm', "algorithm"},
		{81, 2, "salt size"},
		{65, 0x20, "data block size"},
		{72, 0, "data blocks"},
		{40, 'x', "after its NUL"},
	} {
		b := append([]byte(nil), good...)
		b[tc.off] = tc.val
		if _, err := ParseSuperblock(b); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("byte %d = %#x: %v, want an error naming %q", tc.off, tc.val, err, tc.want)
		}
	}
	if _, err := ParseSuperblock(good[:100]); err == nil {
		t.Error("a short superblock was accepted")
	}
}
