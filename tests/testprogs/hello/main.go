// Command hello is the end-to-end tests' workload: it prints its argv, cwd
// and one environment variable, and exits with the status named by its last
// argument (7 when there is none).
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	wd, _ := os.Getwd()
	fmt.Printf("hello from the workload: args=%q cwd=%s FOO=%s uid=%d\n", os.Args[1:], wd, os.Getenv("FOO"), os.Getuid())
	code := 7
	if n := len(os.Args); n > 1 {
		if c, err := strconv.Atoi(os.Args[n-1]); err == nil {
			code = c
		}
	}
	os.Exit(code)
}
