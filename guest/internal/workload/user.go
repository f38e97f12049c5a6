package workload

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// Identity is a resolved user.
type Identity struct {
	UID, GID uint32
	Groups   []uint32
	Home     string
}

// ResolveUser resolves the spec's user against root's /etc/passwd and
// /etc/group. Numeric ids need no entry; names must exist.
func (s *Spec) ResolveUser(root string) (Identity, error) {
	id := Identity{Home: "/"}
	if s.UID != nil {
		id.UID = *s.UID
		if s.GID != nil {
			id.GID = *s.GID
		}
		id.Groups = s.AdditionalGIDs
		if pw, ok := lookupPasswd(root, func(f []string) bool { return f[2] == strconv.FormatUint(uint64(id.UID), 10) }); ok {
			id.Home = pw[5]
		}
		return id, nil
	}
	if s.User == "" {
		if pw, ok := lookupPasswd(root, func(f []string) bool { return f[2] == "0" }); ok {
			id.Home = pw[5]
		}
		return id, nil
	}
	user, group, hasGroup := strings.Cut(s.User, ":")
	if n, err := strconv.ParseUint(user, 10, 32); err == nil {
		id.UID = uint32(n)
		if pw, ok := lookupPasswd(root, func(f []string) bool { return f[2] == user }); ok {
			id.Home = pw[5]
			gid, _ := strconv.ParseUint(pw[3], 10, 32)
			id.GID = uint32(gid)
		}
	} else {
		pw, ok := lookupPasswd(root, func(f []string) bool { return f[0] == user })
		if !ok {
			return id, fmt.Errorf("user %q not found in /etc/passwd", user)
		}
		uid, err1 := strconv.ParseUint(pw[2], 10, 32)
		gid, err2 := strconv.ParseUint(pw[3], 10, 32)
		if err1 != nil || err2 != nil {
			return id, fmt.Errorf("user %q: malformed /etc/passwd entry", user)
		}
		id.UID, id.GID, id.Home = uint32(uid), uint32(gid), pw[5]
	}
	if hasGroup {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			id.GID = uint32(n)
		} else {
			gr, ok := lookupFile(filepath.Join(root, "etc/group"), 3, func(f []string) bool { return f[0] == group })
			if !ok {
				return id, fmt.Errorf("group %q not found in /etc/group", group)
			}
			g, err := strconv.ParseUint(gr[2], 10, 32)
			if err != nil {
				return id, fmt.Errorf("group %q: malformed /etc/group entry", group)
			}
			id.GID = uint32(g)
		}
	}
	if id.Home == "" {
		id.Home = "/"
	}
	return id, nil
}

func lookupPasswd(root string, match func([]string) bool) ([]string, bool) {
	return lookupFile(filepath.Join(root, "etc/passwd"), 7, match)
}

// lookupFile scans a colon-separated database for the first line with at
// least n fields that matches.
func lookupFile(path string, n int, match func([]string) bool) ([]string, bool) {
	f, err := openRegular(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	s := bufio.NewScanner(io.LimitReader(f, 16<<20))
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) >= n && match(fields) {
			return fields, true
		}
	}
	return nil, false
}
