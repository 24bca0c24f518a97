package cluster

import (
	"sort"

	"github.com/cespare/xxhash/v2"
)

// Rendezvous returns the member with the highest rendezvous (HRW) score for
// key among members, or false when members is empty. It is pure: every
// caller with the same member set gets the same answer, whatever the order
// of members. A Node's Owner uses the same score with member hashes
// precomputed.
func Rendezvous(key string, members []string) (string, bool) {
	if len(members) == 0 {
		return "", false
	}
	kh := xxhash.Sum64String(key)
	best, bestScore := -1, uint64(0)
	for i, m := range members {
		s := score(kh, xxhash.Sum64String(m))
		if best < 0 || s > bestScore || (s == bestScore && m < members[best]) {
			best, bestScore = i, s
		}
	}
	return members[best], true
}

// score mixes a key hash with a member hash. fmix64 (the murmur3 finalizer)
// is a bijection, so for one key distinct member hashes never tie.
func score(keyHash, memberHash uint64) uint64 {
	k := keyHash ^ memberHash
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb93e53b1a8cd
	k ^= k >> 33
	return k
}

// ring is an immutable set of members sorted by name with their name hashes
// precomputed, so that owner is allocation-free.
type ring struct {
	members []Member
	hashes  []uint64
}

func newRing(members []Member) *ring {
	ms := append([]Member(nil), members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	r := &ring{members: ms, hashes: make([]uint64, len(ms))}
	for i := range ms {
		r.hashes[i] = xxhash.Sum64String(ms[i].Name)
	}
	return r
}

// owner returns the index of key's owner in r.members, or -1 if r is empty.
// Members are sorted by name and ties keep the first, which matches
// Rendezvous' tie-break on the smaller name.
func (r *ring) owner(key string) int {
	if r == nil || len(r.hashes) == 0 {
		return -1
	}
	kh := xxhash.Sum64String(key)
	best, bestScore := 0, score(kh, r.hashes[0])
	for i := 1; i < len(r.hashes); i++ {
		if s := score(kh, r.hashes[i]); s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}
