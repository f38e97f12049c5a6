package httpc

import "strings"

// Cookie is a cookie's name and value: what a client sends back.
type Cookie struct {
	Name, Value string
}

// String renders the cookie for a Cookie request header; a value holding a
// space or a comma is quoted (RFC 6265 §4.1.1 allows a quoted value).
func (c Cookie) String() string {
	if strings.ContainsAny(c.Value, " ,") {
		return c.Name + `="` + c.Value + `"`
	}
	return c.Name + "=" + c.Value
}

// Valid reports whether the cookie can be sent: its name a token, its value
// cookie octets (and space or comma, which String quotes).
func (c Cookie) Valid() bool {
	return isToken([]byte(c.Name)) && validCookieValue(c.Value)
}

// parseSetCookie takes the name and value of one Set-Cookie field value,
// "name=value; attributes" (RFC 6265 §5.2). A value in double quotes loses
// them. A malformed pair is dropped (ok false).
func parseSetCookie(line string) (Cookie, bool) {
	pair, _, _ := strings.Cut(line, ";")
	name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
	if !ok {
		return Cookie{}, false
	}
	name = strings.TrimSpace(name)
	value = strings.TrimSpace(value)
	if len(value) > 1 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	c := Cookie{Name: name, Value: value}
	if !c.Valid() {
		return Cookie{}, false
	}
	return c, true
}

// validCookieValue accepts printable ASCII but for '"', ';' and '\\'.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}
