// Command wsload is the benchmark suite's WebSocket client. It has two modes.
//
// echo: -conns connections each send a message and wait for its echo, over
// and over, for -duration; it prints the round trips per second and the
// 50th and 99th percentile round-trip times:
//
//	wsload -mode echo -url wss://localhost:18443/ws/client/ -conns 32 -duration 10s
//	round_trips_per_s=20345.1 p50_ms=1.512 p99_ms=4.870 round_trips=203451 conns=32 cpu_us_per_rt=31.4
//
// cpu_us_per_rt is the CPU time wsload itself spent per round trip while
// they ran (user and system), so the runner can tell the proxy's share of
// the machine from the client's.
//
// idle: opens -conns connections (each proven with one echo), prints
// "open=N" and holds them until SIGTERM, SIGINT or -hold, so the runner can
// read the proxy's resident memory with the connections open.
//
// Certificates are not verified: every server under test uses the suite's
// throwaway self-signed certificate.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// dialParallelism bounds how many handshakes are in flight at once while
// opening connections, so opening 2,000 does not look like a SYN flood.
const dialParallelism = 32

// ioTimeout bounds each write and read so a stalled proxy fails the run
// instead of hanging it.
const ioTimeout = 10 * time.Second

func main() {
	mode := flag.String("mode", "echo", "echo (round trips for -duration) or idle (open and hold)")
	url := flag.String("url", "", "WebSocket URL, such as wss://localhost:18443/ws/client/")
	conns := flag.Int("conns", 32, "number of WebSocket connections")
	duration := flag.Duration("duration", 10*time.Second, "echo: how long to measure")
	size := flag.Int("size", 64, "echo: message size in bytes")
	hold := flag.Duration("hold", 5*time.Minute, "idle: longest time to hold the connections")
	flag.Parse()

	if *url == "" || *conns < 1 || *size < 1 {
		fmt.Fprintln(os.Stderr, "wsload: -url is required, and -conns and -size must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch *mode {
	case "echo":
		err = runEcho(ctx, *url, *conns, *duration, *size)
	case "idle":
		err = runIdle(ctx, *url, *conns, *hold)
	default:
		err = fmt.Errorf("unknown -mode %q; use echo or idle", *mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsload: %v\n", err)
		os.Exit(1)
	}
}

// openAll dials n connections, each checked with one echo, and closes them
// all if any fails.
func openAll(ctx context.Context, url string, n int) ([]*websocket.Conn, error) {
	dialer := websocket.Dialer{
		TLSClientConfig:  &tls.Config{InsecureSkipVerify: true},
		HandshakeTimeout: ioTimeout,
	}
	conns := make([]*websocket.Conn, n)
	errs := make([]error, n)
	slots := make(chan struct{}, dialParallelism)
	var wg sync.WaitGroup
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			c, resp, err := dialer.DialContext(ctx, url, nil)
			if err != nil {
				if resp != nil {
					err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
				}
				errs[i] = fmt.Errorf("connection %d: %w", i, err)
				return
			}
			conns[i] = c
			if err := echo(c, []byte("hello")); err != nil {
				errs[i] = fmt.Errorf("connection %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// echo sends msg and checks that the same bytes come back.
func echo(c *websocket.Conn, msg []byte) error {
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	_, got, err := c.ReadMessage()
	if err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo of %d bytes came back as %d different bytes", len(msg), len(got))
	}
	return nil
}

// runEcho opens the connections, then runs round trips on all of them at
// once for d and prints the rate and percentiles.
func runEcho(ctx context.Context, url string, n int, d time.Duration, size int) error {
	conns, err := openAll(ctx, url, n)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	msg := bytes.Repeat([]byte("x"), size)
	samples := make([][]time.Duration, n)
	errs := make([]error, n)
	cpuBefore := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(deadline) {
					return
				}
				if err := echo(c, msg); err != nil {
					errs[i] = fmt.Errorf("connection %d: %w", i, err)
					return
				}
				samples[i] = append(samples[i], time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpuBefore
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	all := slices.Concat(samples...)
	if len(all) == 0 {
		return errors.New("no round trip completed")
	}
	slices.Sort(all)
	fmt.Printf("round_trips_per_s=%.1f p50_ms=%.3f p99_ms=%.3f round_trips=%d conns=%d cpu_us_per_rt=%.1f\n",
		float64(len(all))/elapsed.Seconds(), ms(percentile(all, 50)), ms(percentile(all, 99)), len(all), n,
		float64(cpu.Microseconds())/float64(len(all)))
	return nil
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// percentile is the nearest-rank p-th percentile of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (len(sorted)*p + 99) / 100 // ceil(n*p/100), 1-based
	return sorted[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runIdle opens the connections, reports them open and holds them until
// told to stop. A connection the proxy drops while held fails the run.
func runIdle(ctx context.Context, url string, n int, hold time.Duration) error {
	conns, err := openAll(ctx, url, n)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	dropped := make(chan error, n)
	for i, c := range conns {
		c.SetReadDeadline(time.Time{}) // the opening echo's deadline must not end the hold
		go func() {
			// The server never sends unprompted, so a read returns only when
			// the connection ends: by our Close, or by the proxy dropping it.
			if _, _, err := c.ReadMessage(); err != nil {
				dropped <- fmt.Errorf("connection %d closed while idle: %w", i, err)
			}
		}()
	}
	fmt.Printf("open=%d\n", n)
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(hold):
		return nil
	case err := <-dropped:
		return err
	}
}
