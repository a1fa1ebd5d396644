package ui

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-proxy/gatehouse/proxyengine"
)

// connColumns are the connection table's columns, with their widths.
var connColumns = []struct {
	title string
	width float32
}{
	{"Client", 170},
	{"Protocol", 130},
	{"Request", 250},
	{"Status", 80},
	{"Open for", 80},
	{"In", 90},
	{"Out", 90},
}

// connColProtocol is the column where WebSockets get their marker.
const connColProtocol = 1

func (d *dashboard) newConnectionTable() *widget.Table {
	t := widget.NewTable(
		func() (int, int) { return len(d.connRows), len(connColumns) },
		func() fyne.CanvasObject {
			label := widget.NewLabel("")
			label.Truncation = fyne.TextTruncateEllipsis
			return container.NewBorder(nil, nil, widget.NewIcon(theme.NewSuccessThemedResource(theme.MediaRecordIcon())) /* a live link */, nil, label)
		},
		func(id widget.TableCellID, cell fyne.CanvasObject) {
			c := cell.(*fyne.Container)
			label, icon := c.Objects[0].(*widget.Label), c.Objects[1].(*widget.Icon)
			if id.Row >= len(d.connRows) {
				return
			}
			conn := d.connRows[id.Row]
			setLabel(label, connCell(conn, id.Col, d.now()), label.Importance)
			if marked := conn.WebSocket && id.Col == connColProtocol; marked != icon.Visible() {
				icon.Hidden = !marked
				c.Refresh() // lay the label out with or without the marker's room
			}
		},
	)
	t.ShowHeaderRow = true
	t.CreateHeader = func() fyne.CanvasObject {
		return widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	}
	t.UpdateHeader = func(id widget.TableCellID, cell fyne.CanvasObject) {
		if id.Col >= 0 && id.Col < len(connColumns) {
			cell.(*widget.Label).SetText(connColumns[id.Col].title)
		}
	}
	for i, col := range connColumns {
		t.SetColumnWidth(i, col.width)
	}
	return t
}

// connCell is the text of one cell of the connection table.
func connCell(c proxyengine.ConnectionInfo, col int, now time.Time) string {
	switch col {
	case 0:
		return c.Remote
	case 1:
		return c.Protocol
	case 2:
		if c.Method == "" {
			return "–"
		}
		return c.Method + " " + c.Path
	case 3:
		switch {
		case c.Method == "":
			return "–"
		case c.WebSocket:
			return "open"
		case c.Status == 0:
			return "waiting"
		}
		return strconv.Itoa(c.Status)
	case 4:
		return formatAge(now.Sub(c.OpenedAt))
	case 5:
		return formatBytes(c.BytesIn)
	case 6:
		return formatBytes(c.BytesOut)
	}
	return ""
}

// renderConnections lists the open connections, oldest first so rows keep
// their place from one second to the next. The tab's title counts them
// all, of the site chosen, however many the snapshot lists.
func (d *dashboard) renderConnections(st proxyengine.Status) {
	conns, open := st.Connections, st.ActiveConnections
	if d.connSite != "" {
		open = len(conns)
		for _, s := range st.Sites {
			if s.Hostname == d.connSite {
				open = max(open, s.ActiveConnections)
			}
		}
	}
	d.connRows = slices.SortedFunc(slices.Values(conns), func(a, b proxyengine.ConnectionInfo) int {
		if c := a.OpenedAt.Compare(b.OpenedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if title := "Connections (" + strconv.Itoa(max(open, len(conns))) + ")"; title != d.connTab.Text {
		d.connTab.Text = title
		d.activity.Refresh()
	}
	d.connTable.Refresh()
}

func (d *dashboard) newEventList() *widget.List {
	return widget.NewList(
		func() int { return len(d.eventRows) },
		func() fyne.CanvasObject {
			when := widget.NewLabel("00:00:00")
			badge := widget.NewLabelWithStyle("certificate", fyne.TextAlignCenter, fyne.TextStyle{Bold: true})
			what := widget.NewLabel("")
			what.Truncation = fyne.TextTruncateEllipsis
			// The badge's cell is as wide as its widest word, so messages line up.
			return container.NewBorder(nil, nil, container.NewHBox(when, container.NewGridWrap(badge.MinSize(), badge)), nil, what)
		},
		func(id widget.ListItemID, row fyne.CanvasObject) {
			if id >= len(d.eventRows) {
				return
			}
			c := row.(*fyne.Container)
			what := c.Objects[0].(*widget.Label)
			left := c.Objects[1].(*fyne.Container)
			when := left.Objects[0].(*widget.Label)
			badge := left.Objects[1].(*fyne.Container).Objects[0].(*widget.Label)
			ev := d.eventRows[id]
			setLabel(when, formatClock(ev.Time, d.now()), when.Importance)
			text, importance := eventBadge(ev)
			setLabel(badge, text, importance)
			setLabel(what, eventText(ev), what.Importance)
		},
	)
}

// eventBadge is the short tag of an event: a request's status code, or its
// kind, coloured by how good or bad it is.
func eventBadge(ev proxyengine.Event) (string, widget.Importance) {
	switch ev.Kind {
	case proxyengine.EventRequest:
		switch {
		case ev.Status >= 500:
			return strconv.Itoa(ev.Status), widget.DangerImportance
		case ev.Status >= 400:
			return strconv.Itoa(ev.Status), widget.WarningImportance
		case ev.Status > 0:
			return strconv.Itoa(ev.Status), widget.SuccessImportance
		}
		return "request", widget.MediumImportance
	case proxyengine.EventError:
		return "error", widget.DangerImportance
	case proxyengine.EventWebSocket:
		return "WebSocket", widget.HighImportance
	case proxyengine.EventUpstream:
		return "upstream", widget.WarningImportance
	case proxyengine.EventCertificate:
		return "certificate", widget.WarningImportance
	}
	return string(ev.Kind), widget.MediumImportance
}

// eventText is the line describing an event: what was asked, how long it
// took and by whom, or the engine's message.
func eventText(ev proxyengine.Event) string {
	text := ev.Message
	if ev.Method != "" || ev.Path != "" {
		req := strings.TrimSpace(ev.Method + " " + ev.Path)
		if text != "" {
			text = req + ": " + text
		} else {
			text = req
		}
	}
	if ev.Duration > 0 {
		text += " · " + formatLatency(ev.Duration)
	}
	if ev.Remote != "" {
		text += " · " + ev.Remote
	}
	return text
}

// renderEvents lists recent events, newest first as the engine keeps them.
func (d *dashboard) renderEvents(events []proxyengine.Event) {
	d.eventRows = events
	d.eventList.Refresh()
}
