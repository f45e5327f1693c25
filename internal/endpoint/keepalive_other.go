//go:build !linux

package endpoint

import "net"

// listenConfig leaves TCP keep-alive to Go, which sets it on each
// accepted connection (keepalive_linux.go sets it once, on the listener).
var listenConfig net.ListenConfig
