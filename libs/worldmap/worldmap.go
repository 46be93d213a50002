// Package worldmap is the shared geometry of the game world: a grid of square
// zones, each divided into square cells for area-of-interest filtering. The
// gateway uses it to validate zone names and pick the cells near a player;
// the world uses it for bounds, neighbours and zone transfer.
package worldmap

import (
	"fmt"
	"strconv"
	"strings"
)

// Map is the world layout. Zone ids are "z<col>_<row>"; coordinates inside a
// zone run from 0 (inclusive) to ZoneSize (exclusive) on both axes.
type Map struct {
	Cols, Rows int     // zones per axis; default 3 x 3
	ZoneSize   float32 // side of a zone in world units; default 1000
	CellSize   float32 // side of an AOI cell; default 100 (must divide ZoneSize)
}

// Default returns the default 3x3 world of 1000-unit zones and 100-unit cells.
func Default() Map { return Map{Cols: 3, Rows: 3, ZoneSize: 1000, CellSize: 100} }

// Validate checks the layout.
func (m Map) Validate() error {
	switch {
	case m.Cols < 1 || m.Rows < 1 || m.Cols > 1000 || m.Rows > 1000:
		return fmt.Errorf("worldmap: %dx%d zones: want 1..1000 per axis", m.Cols, m.Rows)
	case m.ZoneSize <= 0 || m.CellSize <= 0 || m.CellSize > m.ZoneSize:
		return fmt.Errorf("worldmap: zone size %v, cell size %v: want 0 < cell <= zone", m.ZoneSize, m.CellSize)
	case m.CellsPerSide()*int(m.CellSize) != int(m.ZoneSize):
		return fmt.Errorf("worldmap: cell size %v does not divide zone size %v", m.CellSize, m.ZoneSize)
	}
	return nil
}

// CellsPerSide is the number of AOI cells along one side of a zone.
func (m Map) CellsPerSide() int { return int(m.ZoneSize / m.CellSize) }

// ZoneID names the zone at (col, row).
func ZoneID(col, row int) string { return "z" + strconv.Itoa(col) + "_" + strconv.Itoa(row) }

// ParseZone returns the grid position of a zone id of this map.
func (m Map) ParseZone(id string) (col, row int, ok bool) {
	rest, found := strings.CutPrefix(id, "z")
	if !found {
		return 0, 0, false
	}
	cs, rs, found := strings.Cut(rest, "_")
	if !found {
		return 0, 0, false
	}
	c, err1 := strconv.Atoi(cs)
	r, err2 := strconv.Atoi(rs)
	if err1 != nil || err2 != nil || c < 0 || r < 0 || c >= m.Cols || r >= m.Rows || ZoneID(c, r) != id {
		return 0, 0, false
	}
	return c, r, true
}

// Has reports whether id is a zone of this map.
func (m Map) Has(id string) bool { _, _, ok := m.ParseZone(id); return ok }

// Zones lists every zone id, row by row.
func (m Map) Zones() []string {
	out := make([]string, 0, m.Cols*m.Rows)
	for r := 0; r < m.Rows; r++ {
		for c := 0; c < m.Cols; c++ {
			out = append(out, ZoneID(c, r))
		}
	}
	return out
}

// Neighbour returns the zone dx, dy zones away from id, if it exists.
func (m Map) Neighbour(id string, dx, dy int) (string, bool) {
	c, r, ok := m.ParseZone(id)
	if !ok {
		return "", false
	}
	c, r = c+dx, r+dy
	if c < 0 || r < 0 || c >= m.Cols || r >= m.Rows {
		return "", false
	}
	return ZoneID(c, r), true
}

// InBounds reports whether (x, y) lies inside a zone.
func (m Map) InBounds(x, y float32) bool {
	return x >= 0 && y >= 0 && x < m.ZoneSize && y < m.ZoneSize
}

// Cross resolves a position outside the zone's bounds to the neighbouring zone
// and the position there. ok is false when there is no zone in that direction.
func (m Map) Cross(zone string, x, y float32) (to string, nx, ny float32, ok bool) {
	dx, dy := 0, 0
	nx, ny = x, y
	switch {
	case x < 0:
		dx, nx = -1, x+m.ZoneSize
	case x >= m.ZoneSize:
		dx, nx = 1, x-m.ZoneSize
	}
	switch {
	case y < 0:
		dy, ny = -1, y+m.ZoneSize
	case y >= m.ZoneSize:
		dy, ny = 1, y-m.ZoneSize
	}
	if dx == 0 && dy == 0 {
		return zone, x, y, false
	}
	to, ok = m.Neighbour(zone, dx, dy)
	if !ok || !m.InBounds(nx, ny) {
		return "", 0, 0, false
	}
	return to, nx, ny, true
}

// CellOf returns the AOI cell of a position (clamped into the zone).
func (m Map) CellOf(x, y float32) uint32 {
	n := m.CellsPerSide()
	cx := clamp(int(x/m.CellSize), n)
	cy := clamp(int(y/m.CellSize), n)
	return uint32(cy*n + cx)
}

// CellCount is the number of cells in a zone.
func (m Map) CellCount() int { n := m.CellsPerSide(); return n * n }

// NearCells returns the cell and its up to 8 neighbours: the area of interest
// of a player standing in cell. The result is appended to dst.
func (m Map) NearCells(dst []uint32, cell uint32) []uint32 {
	n := m.CellsPerSide()
	cx, cy := int(cell)%n, int(cell)/n
	for y := cy - 1; y <= cy+1; y++ {
		for x := cx - 1; x <= cx+1; x++ {
			if x >= 0 && y >= 0 && x < n && y < n {
				dst = append(dst, uint32(y*n+x))
			}
		}
	}
	return dst
}

func clamp(v, n int) int {
	if v < 0 {
		return 0
	}
	if v >= n {
		return n - 1
	}
	return v
}

// Obstacle is an axis-aligned static obstacle in zone coordinates; the same
// obstacles stand in every zone. The world's rules refuse moves into or
// through them, and the gateway announces them in WorldInfo: one list, here.
type Obstacle struct{ X0, Y0, X1, Y1 float32 }

// DefaultObstacles are a few walls and rocks inside every zone, away from edges.
func DefaultObstacles() []Obstacle {
	return []Obstacle{{300, 300, 340, 700}, {600, 200, 800, 230}, {650, 650, 720, 720}}
}
