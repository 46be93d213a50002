//go:build race

package ingest

// raceEnabled: the race detector's sync.Pool drops a share of what is put
// back (by design, to expose reuse bugs), so pooled items allocate there.
const raceEnabled = true
