package postgres

import "time"

// SetGuardTimings sets how long g remembers a key clear and how long it
// leaves a failing database alone (zero: not at all). Call it before using g.
func SetGuardTimings(g *Guard, clearFor, downFor time.Duration) {
	g.clear.ttl = clearFor
	g.downFor = downFor
}
