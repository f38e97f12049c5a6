//go:build !linux

package netup

import "net/netip"

type rtnl struct{}

func dialRoute() (*rtnl, error)                     { return nil, errNoNetlink }
func (r *rtnl) close()                              {}
func (r *rtnl) replaceAddr(int, netip.Prefix) error { return errNoNetlink }
func (r *rtnl) setUp(int) error                     { return errNoNetlink }
