package broker

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the broker's Prometheus series.
type metrics struct {
	requests     *prometheus.CounterVec   // route, code
	attestations *prometheus.CounterVec   // dialect, tee, result, check
	verify       *prometheus.HistogramVec // tee
	storeOps     *prometheus.HistogramVec // op
	releases     *prometheus.CounterVec   // dialect
	registered   *prometheus.CounterVec   // result
	rateLimited  prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealroot_broker_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		attestations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealroot_broker_attestations_total",
			Help: "Attestations by dialect, TEE and result; check names the failed check of a refusal.",
		}, []string{"dialect", "tee", "result", "check"}),
		verify: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sealroot_broker_verify_seconds", Help: "Evidence verification latency by TEE.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"tee"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sealroot_broker_store_seconds", Help: "Store operation latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"op"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealroot_broker_key_releases_total", Help: "Secrets released to attested sessions.",
		}, []string{"dialect"}),
		registered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealroot_broker_registrations_total", Help: "Workload registrations by result.",
		}, []string{"result"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sealroot_broker_rate_limited_total", Help: "Requests refused by the per-client rate limit.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.attestations, m.verify, m.storeOps, m.releases, m.registered, m.rateLimited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Process and Go runtime series; a registry shared with a caller may
	// already have them.
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			if !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// instrument counts requests of one route by status code.
func (s *Server) instrument(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	})
}

// observe records the duration of one operation since start.
func observe(h *prometheus.HistogramVec, label string, start time.Time) {
	h.WithLabelValues(label).Observe(time.Since(start).Seconds())
}
