package ownership

import "hash/fnv"

// Owner returns the instance that should own zone among members: the one
// with the highest hash of (zone, instance) (rendezvous hashing). When one
// instance joins or leaves, only the zones it wins or held move.
func Owner(zone string, members []string) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		h := fnv.New64a()
		_, _ = h.Write([]byte(zone))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(m))
		sc := mix(h.Sum64())
		if best == "" || sc > bestScore || sc == bestScore && m < best {
			best, bestScore = m, sc
		}
	}
	return best
}

// mix is the splitmix64 finalizer: FNV's high bits are poorly mixed for
// short, similar inputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
