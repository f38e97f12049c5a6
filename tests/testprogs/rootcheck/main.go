// Command rootcheck is the verity end-to-end tests' workload. It reads
// /data (written by the test into the image) and prints its SHA-256, shows
// what / is mounted as, writes a new file and overwrites /data through the
// writable layer, reads both back, and exits 5. A read error prints one
// line and exits 3.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
)

func main() {
	data, err := os.ReadFile("/data")
	if err != nil {
		fmt.Printf("rootcheck: reading /data: %v\n", err)
		os.Exit(3)
	}
	fmt.Printf("rootcheck: /data sha256=%x\n", sha256.Sum256(data))
	mounts, _ := os.ReadFile("/proc/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[1] == "/" {
			fmt.Printf("rootcheck: / is %s\n", f[2])
		}
	}
	if err := os.WriteFile("/written", []byte("written by the workload"), 0o644); err != nil {
		fmt.Printf("rootcheck: writing /written: %v\n", err)
		os.Exit(4)
	}
	if err := os.WriteFile("/data", []byte("replaced"), 0o644); err != nil {
		fmt.Printf("rootcheck: overwriting /data: %v\n", err)
		os.Exit(4)
	}
	w, _ := os.ReadFile("/written")
	d, _ := os.ReadFile("/data")
	fmt.Printf("rootcheck: wrote /written=%q /data=%q\n", w, d)
	os.Exit(5)
}
