package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// The admin listener (--admin-listen; docs/broker.md "Listeners").
//
// By default one listener serves everything, because buildah registers at
// the very URL its guests attest to. A guest then reaches the admin API
// too: it cannot use it without credentials, but it can probe it and try
// tokens. With Config.SeparateAdmin the admin API and the metrics move to
// AdminHandler, served on a listener the launcher never relays to a guest
// (bind it to loopback or a management network); ServeHTTP, on the
// guest-facing listener, keeps the key endpoints, buildah's registration
// and the health checks, and has no route to the admin API at all.

// AdminHandler serves the admin API, /metrics and the health checks; nil
// when the admin API shares ServeHTTP's listener.
func (s *Server) AdminHandler() http.Handler {
	if s.adminMux == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.limited(w, r) {
			return
		}
		s.serveNoting(s.adminMux, w, r)
	})
}

func (s *Server) handleAdminNotFound(w http.ResponseWriter, r *http.Request) {
	adminError(w, http.StatusNotFound, "no such endpoint on the admin listener: it serves /admin/v1/, /metrics, /healthz and /readyz")
}

// startAdminListener serves srv.AdminHandler on --admin-listen, with the
// main listener's TLS settings (mTLS admin access included) and timeouts;
// nil when there is no such flag. o.AdminReady learns the bound address.
func startAdminListener(o Options, tlsConf *tls.Config, srv *Server, main *http.Server, log *slog.Logger) (*http.Server, error) {
	if o.AdminListen == "" {
		return nil, nil
	}
	if o.AdminListen == o.Listen && !strings.HasSuffix(o.Listen, ":0") {
		return nil, fmt.Errorf("--admin-listen %s: give an address other than --listen", o.AdminListen)
	}
	ln, err := net.Listen("tcp", o.AdminListen)
	if err != nil {
		return nil, fmt.Errorf("listening on --admin-listen %s: %w", o.AdminListen, err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	hs := &http.Server{
		Handler:           srv.AdminHandler(),
		ReadHeaderTimeout: main.ReadHeaderTimeout,
		ReadTimeout:       main.ReadTimeout,
		WriteTimeout:      main.WriteTimeout,
		IdleTimeout:       main.IdleTimeout,
		MaxHeaderBytes:    main.MaxHeaderBytes,
		ErrorLog:          main.ErrorLog,
	}
	if h, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			log.Warn("the admin listener is not on loopback: keep its address out of the guests' reach (never give it to `sealroot launch --broker`)", "addr", ln.Addr().String())
		}
	}
	log.Info("admin API listening", "addr", ln.Addr().String())
	if o.AdminReady != nil {
		o.AdminReady(ln.Addr())
	}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "err", err)
		}
	}()
	return hs, nil
}
