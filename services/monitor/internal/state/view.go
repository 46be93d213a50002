package state

import (
	"sort"
	"time"
)

// Zone is what the heartbeats of live world instances say about one zone.
type Zone struct {
	Zone     string   `json:"zone"`
	Owner    string   `json:"owner"`  // instance with the highest fence; "" when none
	Owners   []string `json:"owners"` // every live instance that claims the zone
	Fence    uint64   `json:"fence"`
	LastSeq  uint64   `json:"last_seq"`
	Players  int32    `json:"players"`
	Expected bool     `json:"expected"` // part of the configured world grid
}

// Alive reports whether the instance's last heartbeat is within timeout of now.
func (in Instance) Alive(now time.Time, timeout time.Duration) bool {
	return now.Sub(in.Seen) <= timeout
}

// Zones combines the expected zones with those claimed by live world
// instances (heartbeat within timeout), sorted by name.
func (s Snapshot) Zones(expected []string, timeout time.Duration) []Zone {
	byName := map[string]*Zone{}
	for _, z := range expected {
		byName[z] = &Zone{Zone: z, Expected: true}
	}
	for _, in := range s.Instances {
		if in.Service != "world" || in.HB == nil || !in.Alive(s.At, timeout) {
			continue
		}
		for _, zo := range in.HB.GetZones() {
			z := byName[zo.GetZone()]
			if z == nil {
				z = &Zone{Zone: zo.GetZone()}
				byName[zo.GetZone()] = z
			}
			z.Owners = append(z.Owners, in.InstanceID)
			if z.Owner == "" || zo.GetFence() > z.Fence {
				z.Owner, z.Fence, z.LastSeq, z.Players = in.InstanceID, zo.GetFence(), zo.GetLastSeq(), zo.GetPlayers()
			}
		}
	}
	out := make([]Zone, 0, len(byName))
	for _, z := range byName {
		sort.Strings(z.Owners)
		out = append(out, *z)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Zone < out[j].Zone })
	return out
}
