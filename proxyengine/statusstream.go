package proxyengine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
)

// statusHead is a Status without its two long lists, which writeStatus
// streams after it. Its fields shadow the embedded ones, and nil leaves
// them out.
type statusHead struct {
	Status
	Connections []ConnectionInfo `json:"connections,omitempty"`
	WebSockets  []WebSocketInfo  `json:"websockets,omitempty"`
}

// writeStatus writes the full status as the JSON of a Status, listing the
// connections and WebSockets one row at a time: with thousands of visitors
// the document runs to megabytes, and building it whole first would hold
// all of it in memory and send nothing until the last row was encoded. The
// counts are taken before the rows, so a visitor arriving in between may
// be listed but not counted. Pretty indents as json.MarshalIndent with two
// spaces would.
func (e *Engine) writeStatus(w io.Writer, pretty bool) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	head, err := marshalStatusJSON(statusHead{Status: e.Snapshot(View{})}, "", pretty)
	if err != nil {
		return err
	}
	// Reopen the object: the rows' members follow its last one.
	bw.Write(bytes.TrimRight(bytes.TrimSuffix(head, []byte("}")), "\n"))

	list := statusList{w: bw, pretty: pretty}
	if err := writeRows(&list, "connections", e.tracker.connections(), (*trackedConn).info); err != nil {
		return err
	}
	if err := writeRows(&list, "websockets", e.ws.list(), (*wsSession).info); err != nil {
		return err
	}
	if pretty {
		bw.WriteString("\n")
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// writeRows writes the status object's member name: an array of the rows
// info makes of items.
func writeRows[T, R any](l *statusList, name string, items []T, info func(T) R) error {
	l.open(name)
	for _, it := range items {
		if err := l.row(info(it)); err != nil {
			return err
		}
	}
	l.close()
	return nil
}

// statusList writes one JSON array member of the status object, a row at
// a time.
type statusList struct {
	w      *bufio.Writer
	pretty bool
	rows   int
}

func (l *statusList) open(name string) {
	l.rows = 0
	if l.pretty {
		l.w.WriteString(",\n  \"" + name + "\": [")
	} else {
		l.w.WriteString(",\"" + name + "\":[")
	}
}

// row appends v; a failed write (the client went away) stops the listing.
func (l *statusList) row(v any) error {
	b, err := marshalStatusJSON(v, "    ", l.pretty)
	if err != nil {
		return err
	}
	if l.rows > 0 {
		l.w.WriteByte(',')
	}
	if l.pretty {
		l.w.WriteString("\n    ")
	}
	l.rows++
	_, err = l.w.Write(b)
	return err
}

func (l *statusList) close() {
	if l.pretty && l.rows > 0 {
		l.w.WriteString("\n  ")
	}
	l.w.WriteString("]")
}

func marshalStatusJSON(v any, prefix string, pretty bool) ([]byte, error) {
	if pretty {
		return json.MarshalIndent(v, prefix, "  ")
	}
	return json.Marshal(v)
}
