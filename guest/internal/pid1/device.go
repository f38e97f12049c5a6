package pid1

import (
	"context"
	"fmt"
	"os"
	"time"
)

// WaitForDevice polls for path until it exists or ctx ends. devtmpfs
// creates block nodes as soon as the driver registers the disk, so polling
// a few milliseconds apart needs no uevent listener.
func WaitForDevice(ctx context.Context, path string) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not appear: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}
