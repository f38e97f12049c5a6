package verity

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// BenchmarkTree256MiB builds the tree over 256 MiB held in memory: the
// hashing cost alone, without the filesystem or the disk.
// Run: go test -run '^$' -bench Tree -benchtime 3x ./verity/
func BenchmarkTree256MiB(b *testing.B) {
	data := make([]byte, 256<<20)
	rand.Read(data)
	p, err := NewParams(int64(len(data)), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		var h bytes.Buffer
		if _, err := Build(bytes.NewReader(data), &bufWriterAt{&h}, p, BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
