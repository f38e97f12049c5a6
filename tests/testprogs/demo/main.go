// Command demo is `make demo`'s workload: it shows where it runs (the
// root filesystem's device, which is the dm-crypt mapping the init opened
// after attestation) and exits 0.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

func main() {
	fmt.Println("┌──────────────────────────────────────────────────────────────┐")
	fmt.Println("│ hello from a confidential workload                           │")
	fmt.Println("└──────────────────────────────────────────────────────────────┘")
	if f, err := os.Open("/proc/self/mounts"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			fs := strings.Fields(s.Text())
			if len(fs) > 2 && fs[1] == "/" {
				fmt.Printf("  root filesystem: %s (%s)\n", fs[0], fs[2])
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/sys/block/dm-0/dm/name"); err == nil {
		fmt.Printf("  dm-crypt mapping: %s", b)
	}
	if b, err := os.ReadFile("/sys/block/dm-0/dm/uuid"); err == nil {
		fmt.Printf("  mapping uuid:     %s", b)
	}
	fmt.Printf("  workload argv:    %q\n", os.Args)
	if m := os.Getenv("DEMO_MESSAGE"); m != "" {
		fmt.Printf("  message:          %s\n", m)
	}
}
