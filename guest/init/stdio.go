package main

import (
	"os"

	"github.com/sealroot/sealroot/guest/internal/vport"
)

// workloadStdio returns the workload's standard streams: libkrun's
// krun-stdin/stdout/stderr ports where they exist (the host's stdio is not
// a terminal, and hvc0 goes to libkrun's log), else /dev/null and the
// console. A port that exists but does not open is the run phase's error.
func (b *boot) workloadStdio() (stdin, stdout, stderr *os.File, closeAll func(), err error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ports, err := vport.OpenKrunStdio()
	if err != nil {
		devnull.Close()
		return nil, nil, nil, nil, err
	}
	stdin, stdout, stderr = devnull, os.Stdout, os.Stderr
	if ports.Stdin != nil {
		stdin = ports.Stdin
	}
	if ports.Stdout != nil {
		stdout = ports.Stdout
	}
	if ports.Stderr != nil {
		stderr = ports.Stderr
	}
	if ports.Any() {
		b.report.Log("run", "workload stdio on libkrun's ports (stdin %v, stdout %v, stderr %v)", ports.Stdin != nil, ports.Stdout != nil, ports.Stderr != nil)
	}
	return stdin, stdout, stderr, func() { devnull.Close(); ports.Close() }, nil
}
