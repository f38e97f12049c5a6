package diskconfig

// Lexical checks of config values, written by hand rather than as regular
// expressions: the guest init links no regexp package for them. Their
// tests compare each with the regular expression it stands for.

// IsUUID reports whether s is a UUID in its 8-4-4-4-12 hex form, in lower
// case only unless upper is set.
func IsUUID(s string, upper bool) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case isLowerHex(c), upper && 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// isRootHash reports whether s is 64 lower-case hex digits.
func isRootHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

// isOverlaySize reports whether s is a tmpfs size: 1 to 16 digits without
// a leading zero and an optional k, m or g; or a percentage from 1% to
// 100% without a leading zero.
func isOverlaySize(s string) bool {
	if s == "100%" {
		return true
	}
	digits, suffix := s, ""
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'm', 'g', '%':
			digits, suffix = s[:n-1], s[n-1:]
		}
	}
	max := 16
	if suffix == "%" {
		max = 2
	}
	if len(digits) == 0 || len(digits) > max || digits[0] == '0' {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
