package ui

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/acme"
)

// The dashboard's words for numbers, times and errors, kept apart so each
// rule is written (and tested) once.

// formatRate writes requests per second with one decimal below ten.
func formatRate(r float64) string {
	if r < 10 {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strconv.FormatFloat(r, 'f', 0, 64)
}

// formatPercent writes a share from 0 to 1 as a percentage.
func formatPercent(share float64) string {
	return strconv.FormatFloat(share*100, 'f', 1, 64) + " %"
}

// formatLatency writes a latency in the unit that suits it.
func formatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + " µs"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
}

// formatAge writes how long something has lasted: "45 s", "3 min", "2 h 5 min", "4 days".
func formatAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(max(d, 0)/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return strconv.Itoa(h) + " h"
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days"
}

// formatClock writes a time of day in local time; a time on another day
// gets its date.
func formatClock(t, now time.Time) string {
	t, now = t.Local(), now.Local()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return t.Format("15:04:05")
	}
	return t.Format("2 Jan 15:04")
}

// formatDate writes a calendar date, as certificates are dated.
func formatDate(t time.Time) string {
	return t.Local().Format("2 Jan 2006")
}

// formatBytes writes a byte count with a binary unit.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	value, suffix := float64(n)/unit, "KiB"
	for _, next := range []string{"MiB", "GiB", "TiB"} {
		if value < unit {
			break
		}
		value, suffix = value/unit, next
	}
	return strconv.FormatFloat(value, 'f', 1, 64) + " " + suffix
}

// daysUntil is how many whole days are left before t; negative once past.
func daysUntil(t, now time.Time) int {
	d := t.Sub(now)
	days := int(d / (24 * time.Hour))
	if d < 0 && d%(24*time.Hour) != 0 {
		days-- // a certificate that expired an hour ago expired "-1 days" ago, not 0
	}
	return days
}

// plainError is an error in the words a person needs: for an ACME failure
// its summary and fix rather than the CA's detail.
func plainError(err error) string {
	var acme *acme.Error
	if errors.As(err, &acme) && acme.Summary != "" {
		if acme.Fix != "" {
			return inAppWords(acme.Summary + " " + acme.Fix)
		}
		return inAppWords(acme.Summary)
	}
	return inAppWords(err.Error())
}
