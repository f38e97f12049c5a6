package cryptsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sync/errgroup"
)

// encryptChunk is the unit of work of the payload pipeline.
const encryptChunk = 1 << 20

// encryptPayload reads exactly size bytes from r, pads them with zeros to a
// whole sector, encrypts them and writes them to w at off. One goroutine
// reads; `workers` goroutines encrypt chunks and write them in place with
// WriteAt, so chunks finish out of order but land where they belong. At
// most workers+2 chunks are in memory. It returns the padded length.
func encryptPayload(w *os.File, off int64, r io.Reader, size int64, sc *sectorCipher, sectorSize int, ivTweak uint64, workers int) (int64, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	padded := roundUp(size, int64(sectorSize))
	type job struct {
		buf []byte
		at  int64 // payload-relative offset
	}
	free := make(chan []byte, workers+2)
	for range workers + 2 {
		free <- make([]byte, encryptChunk)
	}
	jobs := make(chan job)
	g, ctx := errgroup.WithContext(context.Background())
	for range workers {
		g.Go(func() error {
			for j := range jobs {
				sc.encrypt(j.buf, ivTweak+uint64(j.at/512), sectorSize)
				if _, err := w.WriteAt(j.buf, off+j.at); err != nil {
					return fmt.Errorf("writing encrypted payload at offset %d of %s: %w", off+j.at, w.Name(), err)
				}
				free <- j.buf[:cap(j.buf)]
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		for at := int64(0); at < padded; at += encryptChunk {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return nil
			}
			n := min(int64(encryptChunk), padded-at)
			buf = buf[:n]
			want := min(n, size-at)
			if got, err := io.ReadFull(r, buf[:want]); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return fmt.Errorf("plaintext ended after %d bytes, %d were announced", at+int64(got), size)
				}
				return fmt.Errorf("reading plaintext at byte %d: %w", at+int64(got), err)
			}
			clear(buf[want:])
			select {
			case jobs <- job{buf: buf, at: at}:
			case <-ctx.Done():
				return nil
			}
		}
		var one [1]byte
		if n, _ := io.ReadFull(r, one[:]); n > 0 {
			return fmt.Errorf("plaintext is longer than the announced %d bytes", size)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return padded, nil
}
