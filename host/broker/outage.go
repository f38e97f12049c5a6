package broker

import (
	"net/http"
	"strconv"
)

// retryAfter is the Retry-After of a 503 caused by a store outage, in
// seconds.
const retryAfter = 2

// outageWriter answers 503 with Retry-After instead of 500 when a store
// call of the request failed because the store is unavailable (a deadline
// missed, the connection lost, the disk full, the database damaged): the
// client may retry, on this replica later or on another now. The handler's
// body, in its dialect's shape, is kept.
type outageWriter struct {
	http.ResponseWriter
	outage func() bool
}

func (w *outageWriter) WriteHeader(code int) {
	if code == http.StatusInternalServerError && w.outage() {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		code = http.StatusServiceUnavailable
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *outageWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
