// Command seqread is the verity benchmark's workload: it reads the file
// named by its argument sequentially in 1 MiB reads, prints the bytes read
// and the time taken, and exits 0 (1 on a read error).
package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Printf("seqread: %v\n", err)
		os.Exit(1)
	}
	buf := make([]byte, 1<<20)
	t0 := time.Now()
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Printf("seqread: %v\n", err)
			os.Exit(1)
		}
	}
	fmt.Printf("seqread: %d bytes in %.3f ms\n", n, float64(time.Since(t0).Microseconds())/1000)
}
