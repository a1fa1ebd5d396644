package proxyengine

import (
	"html/template"
	"net/http"
	"strconv"
)

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Code}} {{.Status}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}small{color:#777}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Detail}}</p><p><small>{{.Code}} {{.Status}} · Gatehouse</small></p></body></html>
`))

// writeErrorPage answers with status and a short page saying what failed.
// Visitors see what went wrong in general terms; the log has the details.
func writeErrorPage(w http.ResponseWriter, code int, title, detail string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(code)
	errorPage.Execute(w, struct {
		Code                  string
		Status, Title, Detail string
	}{strconv.Itoa(code), http.StatusText(code), title, detail})
}
