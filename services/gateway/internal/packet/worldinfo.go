package packet

import (
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// WorldInfo describes map m for clients (Welcome.world, the WorldInfo
// answer): its zones with their neighbours and the obstacles, the world's
// default rules' list (libs/worldmap) when obstacles is nil.
func WorldInfo(m worldmap.Map, obstacles []*schema.Rect) *schema.WorldInfo {
	w := &schema.WorldInfo{Cols: uint32(m.Cols), Rows: uint32(m.Rows), ZoneSize: m.ZoneSize, CellSize: m.CellSize, Obstacles: obstacles}
	if w.Obstacles == nil { // the world's default rules stand on the same list
		for _, o := range worldmap.DefaultObstacles() {
			w.Obstacles = append(w.Obstacles, &schema.Rect{MinX: o.X0, MinY: o.Y0, MaxX: o.X1, MaxY: o.Y1})
		}
	}
	for _, id := range m.Zones() {
		col, row, _ := m.ParseZone(id)
		z := &schema.ZoneInfo{Id: id, Col: uint32(col), Row: uint32(row), OriginX: float32(col) * m.ZoneSize, OriginY: float32(row) * m.ZoneSize}
		for _, d := range [][2]int{{-1, 0}, {1, 0}, {0, -1}, {0, 1}, {-1, -1}, {1, -1}, {-1, 1}, {1, 1}} {
			if n, ok := m.Neighbour(id, d[0], d[1]); ok {
				z.Neighbours = append(z.Neighbours, &schema.Neighbour{Dx: int32(d[0]), Dy: int32(d[1]), Zone: n})
			}
		}
		w.Zones = append(w.Zones, z)
	}
	return w
}
