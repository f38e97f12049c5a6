package main

import (
	"io"
	"os"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
)

// luksEncryptor turns the build flags into a cryptsetup format call.
func luksEncryptor(f *imageBuildFlags, generated bool) (image.Encryptor, error) {
	o := cryptsetup.FormatOptions{
		GeneratedPassphrase: generated,
		GuestRAMMiB:         f.memory,
		GuestCPUs:           f.cpus,
		KeyBits:             f.keyBits,
		SectorSize:          f.sectorSize,
		KDF: cryptsetup.KDFOptions{
			Type: f.kdf, Iterations: f.kdfIterations, Time: f.kdfTime,
			MemoryKiB: f.kdfMemoryKiB, Parallel: f.kdfParallel,
		},
	}
	if f.luks1 && f.sectorSize != 0 && f.sectorSize != 512 {
		return nil, usageError("--sector-size: LUKS1 always uses 512-byte sectors")
	}
	if err := checkKDFFlags(f, o); err != nil {
		return nil, err
	}
	format := cryptsetup.FormatLUKS2
	if f.luks1 {
		format = cryptsetup.FormatLUKS1
	}
	return func(dst *os.File, plaintext io.Reader, size int64, pass []byte) (int64, error) {
		return format(dst, plaintext, size, pass, o)
	}, nil
}
