// Command dashload attaches to a Gatehouse service's control socket as the
// desktop dashboard does, for measuring what watching costs the service:
// it follows the stream of totals and fetches the status with the rows a
// dashboard shows once a second, for -duration.
//
//	dashload -socket /run/gatehouse/control.sock -rows 50 -duration 60s
//	updates=118 snapshots=60 rows=50 active_websockets=9000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/control"
	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

func main() {
	socket := flag.String("socket", control.DefaultSocket(), "the service's control socket")
	rows := flag.Int("rows", 50, "connections and WebSockets fetched per snapshot, as the dashboard's table shows")
	every := flag.Duration("every", time.Second, "how often the snapshot is fetched")
	duration := flag.Duration("duration", time.Minute, "how long to watch")
	flag.Parse()
	if err := run(*socket, *rows, *every, *duration); err != nil {
		fmt.Fprintf(os.Stderr, "dashload: %v\n", err)
		os.Exit(1)
	}
}

func run(socket string, rows int, every, duration time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	c := control.NewClient(socket)
	updates, err := c.Updates(ctx)
	if err != nil {
		return err
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var nUpdates, nSnapshots, active int
	for {
		select {
		case <-ctx.Done():
			fmt.Printf("updates=%d snapshots=%d rows=%d active_websockets=%d\n", nUpdates, nSnapshots, rows, active)
			return nil
		case _, ok := <-updates:
			if !ok && ctx.Err() == nil {
				return fmt.Errorf("the service ended the updates stream")
			}
			nUpdates++
		case <-tick.C:
			st, err := c.Status(ctx, proxyengine.View{Rows: rows})
			if err != nil {
				if ctx.Err() != nil {
					continue
				}
				return err
			}
			nSnapshots++
			active = st.ActiveWebSockets
		}
	}
}
