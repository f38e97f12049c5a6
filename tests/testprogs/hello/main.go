// Command hello is the end-to-end tests' workload: it prints its argv, cwd
// and one environment variable, and exits with the status named by its last
// argument (7 when there is none). With "sleep" as its first argument it
// prints its line and then sleeps until it is killed.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	wd, _ := os.Getwd()
	fmt.Printf("hello from the workload: args=%q cwd=%s FOO=%s uid=%d\n", os.Args[1:], wd, os.Getenv("FOO"), os.Getuid())
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		for {
			time.Sleep(time.Hour)
		}
	}
	code := 7
	if n := len(os.Args); n > 1 {
		if c, err := strconv.Atoi(os.Args[n-1]); err == nil {
			code = c
		}
	}
	os.Exit(code)
}
