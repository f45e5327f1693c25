package server

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// The errors of New are printed by `thingif serve` as its one line of
// output: each names the thing that failed (a listener and its address, the
// data directory, the store file, a certificate file) and the system's
// reason, without the chain of operations Go's errors repeat.

// pathReason returns the reason of a file system error without the
// operation and path it repeats ("mkdir /x: not a directory" → "not a
// directory"): the caller's message names the path once, itself.
func pathReason(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// listenError names a listener that could not bind, with the system's
// reason alone: "onboard-tcp 127.0.0.1:1883: address already in use", not
// net's "listen tcp 127.0.0.1:1883: bind: address already in use".
func listenError(name, addr string, err error) error {
	var se *os.SyscallError
	var oe *net.OpError
	switch {
	case errors.As(err, &se):
		err = se.Err
	case errors.As(err, &oe):
		err = oe.Err
	}
	return fmt.Errorf("%s %s: %w", name, addr, err)
}
