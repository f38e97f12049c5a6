package store

import "time"

func init() { lockTimeout = 200 * time.Millisecond }
