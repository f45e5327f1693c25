package endpoint

import (
	"net"
	"sync"
)

// addrCounter counts open connections per source IP address, shared by the
// listeners of one server.
type addrCounter struct {
	max int // <= 0: no bound
	mu  sync.Mutex
	n   map[string]int
}

func newAddrCounter(max int) *addrCounter {
	return &addrCounter{max: max, n: make(map[string]int)}
}

// acquire counts a connection from addr and reports whether it is within
// the bound; a true answer must be followed by release.
func (a *addrCounter) acquire(addr net.Addr) (key string, ok bool) {
	if a.max <= 0 {
		return "", true
	}
	key = addr.String()
	if ta, ok := addr.(*net.TCPAddr); ok {
		key = ta.IP.String()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key] >= a.max {
		return "", false
	}
	a.n[key]++
	return key, true
}

func (a *addrCounter) release(key string) {
	if a.max <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key]--; a.n[key] <= 0 {
		delete(a.n, key)
	}
}

// open returns the number of connections counted for the IP address ip.
func (a *addrCounter) open(ip string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[ip]
}
