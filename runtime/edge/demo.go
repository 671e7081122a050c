package edge

import (
	_ "embed"
	"net/http"
)

//go:embed demo.html
var demoHTML []byte

func serveDemo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(demoHTML)
}
