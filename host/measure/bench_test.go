package measure

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkMeasure64MiB measures a direct boot with a 64 MiB initrd and a
// 12 MiB kernel: SNP under QEMU (SHA-256 of each file into the kernel
// hashes page), SNP under libkrun (each 4 KiB page of the bundles chained
// with SHA-384), TDX RTMR1/RTMR2 (Authenticode SHA-384 of the kernel,
// SHA-384 of the initrd) and the simulated TEE. It reports the time of one
// measurement and MB/s over the kernel and initrd bytes.
// Run: go test -run '^$' -bench Measure64MiB -benchtime 3x ./host/measure/
func BenchmarkMeasure64MiB(b *testing.B) {
	dir := b.TempDir()
	kernel, initrd := make([]byte, 12<<20), make([]byte, 64<<20)
	rand.Read(kernel)
	rand.Read(initrd)
	kp, ip := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	if err := os.WriteFile(kp, kernel, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(ip, initrd, 0o644); err != nil {
		b.Fatal(err)
	}
	n := int64(len(kernel) + len(initrd))
	b.Run("snp-qemu", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			if _, err := SNP(SNPInputs{Firmware: amdSev, CPUs: 4, CPUSig: CPUSigs["EPYC-v4"], GuestFeatures: 1, Kernel: kp, Initrd: ip, Cmdline: "console=ttyS0"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("snp-libkrun", func(b *testing.B) {
		b.SetBytes(n)
		qboot := make([]byte, 0x10000)
		for i := 0; i < b.N; i++ {
			if _, err := Krun(KrunInputs{Qboot: qboot, KernelBundle: kernel, InitrdBundle: initrd, CPUs: 4, MemoryMiB: 2048}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tdx-rtmr", func(b *testing.B) {
		// The kernel's bytes follow a small PE header as data after its
		// last section, which the Authenticode digest covers too.
		pe := filepath.Join(dir, "vmlinuz.efi")
		if err := os.WriteFile(pe, append(synthPE(true, 16, 0, 0), kernel...), 0o644); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			if _, _, err := RTMRs(RTMRInputs{Kernel: pe, Initrd: ip, Cmdline: "console=ttyS0"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sim", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			if _, err := Sim(SimInputs{Kernel: kp, Initrd: ip, Cmdline: "console=ttyS0", CPUs: 4, MemoryMiB: 2048}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
