package cryptsetup

import "time"

// DeviceNode returns a node for the device-mapper device name with the
// given number, as Unlock finds its own: devtmpfs's /dev/dm-N, waited for
// up to timeout, else /dev/mapper/<name> made with mknod. Other targets
// (dm-verity) use it.
func DeviceNode(name string, major, minor uint32, timeout time.Duration) (string, error) {
	dev, _, err := findNode(name, major, minor, timeout, false)
	return dev, err
}
