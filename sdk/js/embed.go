// Package jssdk embeds the JavaScript SDK (src/index.js) for the edge,
// which serves it to the demo page at /sdk/tigerchat.js. npm users get the
// same file from package.json's exports; this Go file is not published.
package jssdk

import _ "embed"

// IndexJS is src/index.js, the whole SDK (one ESM module, no dependencies).
//
//go:embed src/index.js
var IndexJS []byte
