package kbs

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// canonicalJSON returns the RFC 8785 (JSON Canonicalization Scheme) form of
// one JSON document: no whitespace, object members sorted by the UTF-16 code
// units of their names, strings with only the escapes JSON requires, and
// numbers printed as ECMAScript prints a double. It is what the Trustee
// dialect hashes into report_data (trusteeBindingDocument) and how nested
// JWE header members are written (protectedHeader).
//
// It refuses, with an error that names the offset, what RFC 8785 cannot
// canonicalize: malformed JSON, invalid UTF-8, lone surrogate escapes,
// duplicate member names, numbers that are not finite doubles, and nesting
// deeper than maxCanonDepth.
func canonicalJSON(doc []byte) ([]byte, error) {
	p := canonParser{in: doc}
	var out bytes.Buffer
	out.Grow(len(doc))
	p.skipSpace()
	if err := p.value(&out, 0); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return nil, fmt.Errorf("canonical json: data after the value at offset %d", p.pos)
	}
	return out.Bytes(), nil
}

// maxCanonDepth bounds nested arrays and objects.
const maxCanonDepth = 64

type canonParser struct {
	in  []byte
	pos int
}

func (p *canonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *canonParser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *canonParser) value(out *bytes.Buffer, depth int) error {
	if p.pos >= len(p.in) {
		return p.errorf("unexpected end of input")
	}
	switch c := p.in[p.pos]; {
	case c == '{' || c == '[':
		if depth >= maxCanonDepth {
			return p.errorf("nested deeper than %d", maxCanonDepth)
		}
		if c == '{' {
			return p.object(out, depth+1)
		}
		return p.array(out, depth+1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return err
		}
		writeCanonString(out, s)
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(out)
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(p.in[p.pos:], []byte(lit)) {
				p.pos += len(lit)
				out.WriteString(lit)
				return nil
			}
		}
		return p.errorf("unexpected character %q", c)
	}
}

// expect consumes c after optional whitespace.
func (p *canonParser) expect(c byte) bool {
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *canonParser) array(out *bytes.Buffer, depth int) error {
	p.pos++ // [
	out.WriteByte('[')
	if p.expect(']') {
		out.WriteByte(']')
		return nil
	}
	for first := true; ; first = false {
		if !first {
			out.WriteByte(',')
		}
		p.skipSpace()
		if err := p.value(out, depth); err != nil {
			return err
		}
		if p.expect(']') {
			out.WriteByte(']')
			return nil
		}
		if !p.expect(',') {
			return p.errorf("want , or ] in an array")
		}
	}
}

type canonMember struct {
	key   []uint16 // the name in UTF-16, the sort key
	name  string
	value []byte // canonical
}

func (p *canonParser) object(out *bytes.Buffer, depth int) error {
	p.pos++ // {
	var members []canonMember
	if !p.expect('}') {
		for {
			p.skipSpace()
			if p.pos >= len(p.in) || p.in[p.pos] != '"' {
				return p.errorf("want a member name")
			}
			name, err := p.str()
			if err != nil {
				return err
			}
			if !p.expect(':') {
				return p.errorf("want : after a member name")
			}
			p.skipSpace()
			var v bytes.Buffer
			if err := p.value(&v, depth); err != nil {
				return err
			}
			members = append(members, canonMember{utf16.Encode([]rune(name)), name, v.Bytes()})
			if p.expect('}') {
				break
			}
			if !p.expect(',') {
				return p.errorf("want , or } in an object")
			}
		}
	}
	slices.SortFunc(members, func(a, b canonMember) int { return slices.Compare(a.key, b.key) })
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			if m.name == members[i-1].name {
				return p.errorf("member name %q appears twice", truncate(m.name))
			}
			out.WriteByte(',')
		}
		writeCanonString(out, m.name)
		out.WriteByte(':')
		out.Write(m.value)
	}
	out.WriteByte('}')
	return nil
}

// str decodes the string at p.pos (on its opening quote).
func (p *canonParser) str() (string, error) {
	p.pos++ // "
	var b strings.Builder
	for {
		if p.pos >= len(p.in) {
			return "", p.errorf("unterminated string")
		}
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			return b.String(), nil
		case c < 0x20:
			return "", p.errorf("control character 0x%02x in a string", c)
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			b.WriteRune(r)
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			p.pos++
		default:
			r, n := utf8.DecodeRune(p.in[p.pos:])
			if r == utf8.RuneError && n <= 1 {
				return "", p.errorf("invalid UTF-8 in a string")
			}
			b.WriteRune(r)
			p.pos += n
		}
	}
}

// escape decodes one backslash escape, joining a surrogate pair.
func (p *canonParser) escape() (rune, error) {
	if p.pos+1 >= len(p.in) {
		return 0, p.errorf("unterminated escape")
	}
	c := p.in[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, p.errorf("invalid escape \\%c", c)
	}
	r, err := p.hex4()
	if err != nil {
		return 0, err
	}
	switch {
	case utf16.IsSurrogate(r) && r < 0xdc00:
		if !bytes.HasPrefix(p.in[p.pos:], []byte(`\u`)) {
			return 0, p.errorf("high surrogate \\u%04x without a low one", r)
		}
		p.pos += 2
		lo, err := p.hex4()
		if err != nil {
			return 0, err
		}
		if lo < 0xdc00 || lo > 0xdfff {
			return 0, p.errorf("\\u%04x after a high surrogate is not a low one", lo)
		}
		return utf16.DecodeRune(r, lo), nil
	case utf16.IsSurrogate(r):
		return 0, p.errorf("lone low surrogate \\u%04x", r)
	}
	return r, nil
}

func (p *canonParser) hex4() (rune, error) {
	if p.pos+4 > len(p.in) {
		return 0, p.errorf("short \\u escape")
	}
	v, err := strconv.ParseUint(string(p.in[p.pos:p.pos+4]), 16, 16)
	if err != nil || p.in[p.pos] == '+' || p.in[p.pos] == '-' {
		return 0, p.errorf("invalid \\u escape")
	}
	p.pos += 4
	return rune(v), nil
}

// number checks the JSON number grammar, parses the number as a double and
// writes it as ECMAScript would.
func (p *canonParser) number(out *bytes.Buffer) error {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.in) && p.in[p.pos] >= '0' && p.in[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.in[p.pos] == '-' {
		p.pos++
	}
	intStart := p.pos
	if n := digits(); n == 0 || (n > 1 && p.in[intStart] == '0') {
		return p.errorf("malformed number")
	}
	if p.pos < len(p.in) && p.in[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return p.errorf("malformed number")
		}
	}
	if p.pos < len(p.in) && (p.in[p.pos] == 'e' || p.in[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.in) && (p.in[p.pos] == '+' || p.in[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return p.errorf("malformed number")
		}
	}
	f, err := strconv.ParseFloat(string(p.in[start:p.pos]), 64)
	if err != nil {
		return fmt.Errorf("offset %d: number %.40s is not a finite double", start, p.in[start:p.pos])
	}
	out.WriteString(es6Number(f))
	return nil
}

// es6Number formats a finite double as ECMAScript's Number::toString does
// (ECMA-262 §7.1.12.1, the form RFC 8785 §3.2.2.3 prescribes): the shortest
// digits that round-trip, plain notation for decimal exponents from -6 to
// 20, exponent notation ("1e+21", "1.5e-7") outside, and 0 for -0.
func es6Number(f float64) string {
	if f == 0 {
		return "0"
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		panic("es6Number: not finite") // number() only passes finite values
	}
	var b strings.Builder
	if f < 0 {
		b.WriteByte('-')
		f = -f
	}
	// "d.ddde±x": the shortest round-trip digits and the exponent.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expText, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expText)
	k, n := len(digits), exp+1 // n: where the decimal point falls
	switch {
	case k <= n && n <= 21:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", n-k))
	case 0 < n && n <= 21:
		b.WriteString(digits[:n])
		b.WriteByte('.')
		b.WriteString(digits[n:])
	case -6 < n && n <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -n))
		b.WriteString(digits)
	default:
		b.WriteString(digits[:1])
		if k > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		if n-1 >= 0 {
			b.WriteByte('+')
		}
		b.WriteString(strconv.Itoa(n - 1))
	}
	return b.String()
}

// writeCanonString writes s as RFC 8785 §3.2.2.2 prescribes: quote,
// backslash and the control characters escaped (the five with short forms
// as \b \t \n \f \r, the others as \u00xx in lower case), everything else
// as its UTF-8 bytes.
func writeCanonString(out *bytes.Buffer, s string) {
	const hexDigits = "0123456789abcdef"
	out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			out.WriteByte('\\')
			out.WriteByte(c)
		case '\b':
			out.WriteString(`\b`)
		case '\t':
			out.WriteString(`\t`)
		case '\n':
			out.WriteString(`\n`)
		case '\f':
			out.WriteString(`\f`)
		case '\r':
			out.WriteString(`\r`)
		default:
			if c < 0x20 {
				out.WriteString(`\u00`)
				out.WriteByte(hexDigits[c>>4])
				out.WriteByte(hexDigits[c&0xf])
			} else {
				out.WriteByte(c)
			}
		}
	}
	out.WriteByte('"')
}
