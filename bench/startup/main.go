// Command startup measures how long a proxy takes from process start to its
// first proxied response. It starts the command after "--", polls -url on a
// fresh TLS connection every -interval until a 200 answer carries -want in
// its body, prints the time, and stops the process with SIGTERM:
//
//	startup -url https://localhost:18443/ -want 'authentik stand-in' -- nginx -c /tmp/nginx.conf
//	first_response_ms=31.4
//
// A non-200 answer or a refused connection means "not yet"; the loop gives
// up after -timeout.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long the process gets to exit after SIGTERM before it is
// killed.
const stopGrace = 10 * time.Second

func main() {
	url := flag.String("url", "", "URL whose proxied answer marks the proxy as ready")
	want := flag.String("want", "", "text the upstream's answer contains")
	interval := flag.Duration("interval", time.Millisecond, "pause between attempts")
	timeout := flag.Duration("timeout", 30*time.Second, "longest wait for the first answer")
	flag.Parse()
	if *url == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: startup -url URL [-want TEXT] -- command [args]")
		os.Exit(2)
	}
	elapsed, err := measure(flag.Args(), *url, *want, *interval, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "startup: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("first_response_ms=%.1f\n", float64(elapsed)/float64(time.Millisecond))
}

// measure runs argv and returns the time from its start to the first good
// answer, stopping the process either way.
func measure(argv []string, url, want string, interval, timeout time.Duration) (time.Duration, error) {
	client := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the suite's throwaway certificate
			DisableKeepAlives: true,                                  // each attempt is a fresh connection, as a new visitor's
		},
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = os.Stderr // keep stdout for the result line
	cmd.Stderr = os.Stderr
	exited := make(chan error, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	go func() { exited <- cmd.Wait() }()
	defer stop(cmd, exited)

	var last error
	for time.Since(start) < timeout {
		select {
		case err := <-exited:
			exited <- err // for stop
			return 0, fmt.Errorf("%s exited before answering: %v", argv[0], err)
		default:
		}
		ok, err := answered(client, url, want)
		if ok {
			return time.Since(start), nil
		}
		last = err
		time.Sleep(interval)
	}
	return 0, fmt.Errorf("no good answer from %s within %s; last: %v", url, timeout, last)
}

// answered reports whether url answers 200 with want in the body.
func answered(client *http.Client, url, want string) (bool, error) {
	resp, err := client.Get(url)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("HTTP %s", resp.Status)
	}
	if !strings.Contains(string(body), want) {
		return false, errors.New("the answer lacks the expected text")
	}
	return true, nil
}

// stop sends SIGTERM and waits, killing the process if it lingers.
func stop(cmd *exec.Cmd, exited chan error) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopGrace):
		cmd.Process.Kill()
		<-exited
	}
}
