// Command adminprobe is an end-to-end test workload playing a hostile
// guest: it tries the broker's admin API and metrics through the address
// the guest attests to (its first argument, the attestation URL), with the
// admin token from $PROBE_TOKEN, under several spellings of the path
// (following a redirect once). It prints one line per request,
// "probe PATH STATUS", never the token, and
// exits 0 when the broker answered its health check and none of the
// admin requests reached the admin API, 3 otherwise.
package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Println("usage: adminprobe ATTESTATION_URL")
		os.Exit(2)
	}
	u, err := url.Parse(os.Args[1])
	if err != nil || u.Host == "" {
		fmt.Println("adminprobe: bad attestation URL")
		os.Exit(2)
	}
	token := os.Getenv("PROBE_TOKEN")
	ok := true
	if code, _ := get(u.Host, "/healthz", ""); code != http.StatusOK {
		fmt.Println("adminprobe: the broker is not reachable: the probe proves nothing")
		ok = false
	}
	for _, p := range []string{"/admin/v1/workloads", "//admin/v1/workloads", "/kbs/v0/../../admin/v1/workloads",
		"/%61dmin/v1/workloads", "/metrics"} {
		code, loc := get(u.Host, p, token)
		if code >= 300 && code < 400 && loc != "" {
			// The broker's router redirects unclean paths: follow once.
			code, _ = get(u.Host, loc, token)
		}
		// 404 is the only acceptable answer: 200 or 401 mean an admin
		// API is listening.
		if code != http.StatusNotFound {
			ok = false
		}
	}
	if !ok {
		os.Exit(3)
	}
	fmt.Println("adminprobe: no admin API at the attestation address")
}

// get sends a GET with the request target exactly as given (no client-side
// path cleaning) and returns the status, or -1, and the redirect target's
// path when it is on the same server.
func get(host, target, token string) (int, string) {
	c, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		fmt.Printf("probe %s error %v\n", target, err)
		return -1, ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", target, host, auth)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		fmt.Printf("probe %s error %v\n", target, err)
		return -1, ""
	}
	resp.Body.Close()
	fmt.Printf("probe %s %d\n", target, resp.StatusCode)
	loc := ""
	if l, err := url.Parse(resp.Header.Get("Location")); err == nil && l.Path != "" && (l.Host == "" || l.Host == host) {
		loc = l.EscapedPath()
	}
	return resp.StatusCode, loc
}
