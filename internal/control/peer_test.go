package control

import (
	"testing"
	"time"
)

// TestMemberCacheAsksOncePerTTL: a user connecting again within the TTL
// costs no lookup; after it, the database is asked again (so a user just
// added to the group is admitted); each user has their own answer.
func TestMemberCacheAsksOncePerTTL(t *testing.T) {
	lookups := map[int]int{}
	member := map[int]bool{1001: true}
	m := &memberCache{ttl: time.Hour, lookup: func(uid int) bool { lookups[uid]++; return member[uid] }}
	for range 100 {
		if !m.member(1001) || m.member(1002) {
			t.Fatal("wrong answer")
		}
	}
	if lookups[1001] != 1 || lookups[1002] != 1 {
		t.Errorf("lookups %v within the TTL, want one per user", lookups)
	}

	m.ttl = 0 // every answer has expired
	member[1002] = true
	if !m.member(1002) || lookups[1002] != 2 {
		t.Errorf("after the TTL: member %v with %d lookups, want the new answer from a second lookup", m.member(1002), lookups[1002])
	}
}
