package measure

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
)

// TDVF generations: how the firmware hands a direct-boot kernel its
// command line, which changes what RTMR2 holds (docs/measurement.md).
// Both expect QEMU 10.0 or later, whose fw_cfg "etc/boot/kernel" holds the
// kernel file as given, so that RTMR1 measures the unmodified PE image.
const (
	// TDVFEdk2202508 is edk2-stable202508 and later: the firmware puts
	// "initrd=initrd " before the command line.
	TDVFEdk2202508 = "edk2-202508"
	// TDVFEdk2202502 is edk2-stable202502 and edk2-stable202505: the
	// firmware puts " initrd=initrd" after the command line.
	TDVFEdk2202502 = "edk2-202502"
	// DefaultTDVFGeneration is the generation measured unless told.
	DefaultTDVFGeneration = TDVFEdk2202508
)

// TDVFGenerations lists the generations RTMR1 and RTMR2 can be computed
// for, newest first.
var TDVFGenerations = []string{TDVFEdk2202508, TDVFEdk2202502}

// RTMR event strings the firmware measures around the kernel
// (EV_EFI_ACTION events hash the string without its NUL; the separator is
// a 32-bit zero).
const (
	evCallingEFIApplication = "Calling EFI Application from Boot Option"
	evExitBootServices      = "Exit Boot Services Invocation"
	evExitBootServicesOK    = "Exit Boot Services Returned with Success"
)

// maxKernelSize bounds the kernel image read into memory.
const maxKernelSize = 512 << 20

// RTMRInputs are the direct-boot inputs of RTMR1 and RTMR2: the kernel
// and initrd files given to QEMU (-kernel, -initrd), the exact command line
// (-append) and the TDVF generation (default DefaultTDVFGeneration).
type RTMRInputs struct {
	Kernel, Initrd string
	Cmdline        string
	Generation     string
}

// Extend returns SHA-384(mr || digest), a TDX RTMR extended by one event.
func Extend(mr [48]byte, digest [48]byte) [48]byte {
	var b [96]byte
	copy(b[:48], mr[:])
	copy(b[48:], digest[:])
	return sha512.Sum384(b[:])
}

// TDXLoadOptions returns the UEFI LoadOptions the TDVF of generation gen
// gives a kernel started with cmdline, and with a non-empty initrd when
// initrd is set: the command line and the firmware's "initrd=initrd"
// argument, widened byte by byte to UTF-16LE and NUL-terminated. The
// kernel's EFI stub measures exactly these bytes.
func TDXLoadOptions(gen, cmdline string, initrd bool) ([]byte, error) {
	if !CheckTDVFGeneration(gen) {
		return nil, fmt.Errorf("measure: TDVF generation %q: want %s", gen, strings.Join(TDVFGenerations, " or "))
	}
	if strings.IndexByte(cmdline, 0) >= 0 {
		return nil, fmt.Errorf("measure: the kernel command line contains a NUL byte, which QEMU cannot pass")
	}
	s := cmdline
	switch {
	case !initrd && cmdline == "":
		// The firmware then gives the kernel no LoadOptions at all.
		return nil, fmt.Errorf("measure: RTMR2 of a kernel without a command line and without an initrd is not computed")
	case !initrd:
	case gen == TDVFEdk2202508:
		s = "initrd=initrd " + cmdline
	default:
		s = cmdline + " initrd=initrd"
	}
	b := make([]byte, 2*len(s)+2)
	for i := 0; i < len(s); i++ {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s[i]))
	}
	return b, nil
}

// RTMRs computes RTMR1 and RTMR2 of a TD that QEMU and TDVF boot directly
// into in.Kernel (docs/measurement.md):
//
//	RTMR1: the kernel's Authenticode SHA-384, "Calling EFI Application from
//	       Boot Option", the separator, "Exit Boot Services Invocation",
//	       "Exit Boot Services Returned with Success";
//	RTMR2: SHA-384 of the LoadOptions (TDXLoadOptions), then SHA-384 of the
//	       initrd unless it is empty, both measured by the kernel's EFI stub.
func RTMRs(in RTMRInputs) (rtmr1, rtmr2 [48]byte, err error) {
	if in.Generation == "" {
		in.Generation = DefaultTDVFGeneration
	}
	if in.Kernel == "" || in.Initrd == "" {
		return rtmr1, rtmr2, fmt.Errorf("measure: RTMR1 and RTMR2 need the kernel and the initrd")
	}
	fi, err := os.Stat(in.Initrd)
	if err != nil {
		return rtmr1, rtmr2, fmt.Errorf("measure: initrd: %w", err)
	}
	opts, err := TDXLoadOptions(in.Generation, in.Cmdline, fi.Size() > 0)
	if err != nil {
		return rtmr1, rtmr2, err
	}
	kernel, err := readKernel(in.Kernel)
	if err != nil {
		return rtmr1, rtmr2, err
	}
	pe, err := AuthenticodeSHA384(kernel)
	if err != nil {
		return rtmr1, rtmr2, fmt.Errorf("%w (kernel %s; TDX direct boot needs a kernel with an EFI stub)", err, in.Kernel)
	}
	initrd, err := sha384File("initrd", in.Initrd)
	if err != nil {
		return rtmr1, rtmr2, err
	}
	rtmr2 = Extend([48]byte{}, sha512.Sum384(opts))
	if fi.Size() > 0 { // the EFI stub measures a non-empty initrd only
		rtmr2 = Extend(rtmr2, initrd)
	}
	return RTMR1(pe), rtmr2, nil
}

// CheckTDVFGeneration reports whether gen is one of TDVFGenerations.
func CheckTDVFGeneration(gen string) bool {
	for _, g := range TDVFGenerations {
		if g == gen {
			return true
		}
	}
	return false
}

// RTMR1 replays RTMR1 from the kernel's Authenticode digest.
func RTMR1(kernelPE [48]byte) [48]byte {
	var separator [4]byte
	mr := Extend([48]byte{}, kernelPE)
	mr = Extend(mr, sha512.Sum384([]byte(evCallingEFIApplication)))
	mr = Extend(mr, sha512.Sum384(separator[:]))
	mr = Extend(mr, sha512.Sum384([]byte(evExitBootServices)))
	return Extend(mr, sha512.Sum384([]byte(evExitBootServicesOK)))
}

// readKernel reads a kernel image of at most maxKernelSize bytes.
func readKernel(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("measure: kernel: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKernelSize+1))
	if err != nil {
		return nil, fmt.Errorf("measure: reading kernel %s: %w", path, err)
	}
	if len(b) > maxKernelSize {
		return nil, fmt.Errorf("measure: kernel %s is larger than %d MiB", path, maxKernelSize>>20)
	}
	return b, nil
}

// sha384File hashes a file, streaming it.
func sha384File(what, path string) ([48]byte, error) {
	var out [48]byte
	f, err := os.Open(path)
	if err != nil {
		return out, fmt.Errorf("measure: %s: %w", what, err)
	}
	defer f.Close()
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		return out, fmt.Errorf("measure: reading %s %s: %w", what, path, err)
	}
	h.Sum(out[:0])
	return out, nil
}
