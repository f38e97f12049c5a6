package cryptsetup

// TableOptionsForTest returns the optional parameters of a live crypt table.
func TableOptionsForTest(name string) ([]string, error) { return dmTableOptions(name) }
