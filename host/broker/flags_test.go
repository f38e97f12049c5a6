package broker

import "flag"

// attestations is the count of TestNoErrorsNoGoroutineGrowth (10,000 for
// the full check; CI runs the default).
var attestations = flag.Int("attestations", 300, "attestations in TestNoErrorsNoGoroutineGrowth")
