package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"encoding/binary"
	bolt "go.etcd.io/bbolt"
	"hash/crc32"
)

// batchGroup is a set of writes sharing one transaction. bbolt's own Batch
// commits from a timer goroutine, where a panic on a damaged page would
// end the process; here the first caller of a group commits it in its own
// goroutine, under guardBolt.
//
// A group stays open to new writes until its leader may commit: after
// batchDelay (or when it is full), and after the previous group's commit
// has finished (cmu). Under load, every write that arrives while a commit
// waits for the disk joins the next group, so commits (and their two
// fdatasyncs) grow with the load instead of staying one per batchDelay
// window; an idle broker still commits a lone write after batchDelay.
type batchGroup struct {
	calls []batchCall
	full  chan struct{}
	done  chan struct{}
}

type batchCall struct {
	fn  func(*bolt.Tx) error
	err error
	ran bool
}

// errRetryBatch aborts a group transaction after one of its functions
// failed: that function gets its error, the others run again.
var errRetryBatch = errors.New("retry batch")

func (s *Bolt) batch(fn func(*bolt.Tx) error) error {
	s.bmu.Lock()
	g := s.group
	leader := g == nil
	if leader {
		g = &batchGroup{full: make(chan struct{}), done: make(chan struct{})}
		s.group = g
	}
	idx := len(g.calls)
	g.calls = append(g.calls, batchCall{fn: fn})
	if len(g.calls) >= maxBatch {
		s.group = nil
		close(g.full)
	}
	s.bmu.Unlock()

	if !leader {
		<-g.done
		return g.calls[idx].err
	}
	select {
	case <-time.After(batchDelay):
	case <-g.full:
	}
	func() {
		s.cmu.Lock()
		defer s.cmu.Unlock()
		s.bmu.Lock()
		if s.group == g {
			s.group = nil
		}
		s.bmu.Unlock()
		s.runGroup(g)
	}()
	close(g.done)
	return g.calls[idx].err
}

func (s *Bolt) runGroup(g *batchGroup) {
	for {
		failed := -1
		var ferr error
		err := s.update(func(tx *bolt.Tx) error {
			for i := range g.calls {
				c := &g.calls[i]
				if c.ran {
					continue
				}
				if err := c.fn(tx); err != nil {
					failed, ferr = i, err
					return errRetryBatch
				}
			}
			return nil
		})
		if errors.Is(err, errRetryBatch) {
			g.calls[failed].err, g.calls[failed].ran = ferr, true
			continue
		}
		for i := range g.calls {
			if !g.calls[i].ran {
				g.calls[i].err, g.calls[i].ran = err, true
			}
		}
		return
	}
}

// seqFile keeps, next to the database, the id of the last transaction
// whose commit the broker acknowledged (8 bytes big-endian and their
// CRC-32C). bbolt keeps two meta pages and falls back to the older one
// when the newer is damaged, silently losing the last transaction; a
// database whose newest transaction is below the recorded one is refused
// at open.
type seqFile struct {
	mu   sync.Mutex
	f    *os.File
	last uint64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func openSeqFile(path string) (*seqFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the sequence file: %w", err)
	}
	sf := &seqFile{f: f}
	var b [12]byte
	if n, _ := f.ReadAt(b[:], 0); n == len(b) && crc32.Checksum(b[:8], castagnoli) == binary.BigEndian.Uint32(b[8:]) {
		sf.last = binary.BigEndian.Uint64(b[:8])
	}
	return sf, nil
}

func (sf *seqFile) get() uint64 {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	return sf.last
}

// advance records id when it is newer than the recorded one, fsync'd.
func (sf *seqFile) advance(id uint64) error {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if id <= sf.last || sf.f == nil {
		return nil
	}
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], id)
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	if _, err := sf.f.WriteAt(b[:], 0); err != nil {
		return err
	}
	if err := sf.f.Sync(); err != nil {
		return err
	}
	sf.last = id
	return nil
}

func (sf *seqFile) close() {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.f != nil {
		sf.f.Close()
		sf.f = nil
	}
}
