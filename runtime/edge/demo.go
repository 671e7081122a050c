package edge

import (
	_ "embed"
	"net/http"

	jssdk "tigerchat/sdk/js"
)

//go:embed demo.html
var demoHTML []byte

func serveDemo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(demoHTML)
}

// serveJSSDK serves the JavaScript SDK the demo page is built on.
func serveJSSDK(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(jssdk.IndexJS)
}
