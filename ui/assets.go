package ui

import (
	"embed"
	"io/fs"
)

// dist is the built front-end, committed so `go build` needs no npm.
// Rebuild it with `cd ui/web && npm ci && npm run build` (make ui).
//
//go:embed dist
var dist embed.FS

// Assets returns the embedded dashboard: index.html, app.js, app.css.
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path; fs.Sub cannot fail on it
	}
	return sub
}
