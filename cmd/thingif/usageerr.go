package main

import "errors"

// usageError marks a mistake in how a command was called (a bad flag, a
// missing argument), as opposed to a failure while it ran.
//
// The cli branch defines usageError and usageErr in cli.go, with main
// exiting 2 for them and 1 for other errors; this file is only there until
// that is merged, and goes at the merge.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErr marks err as a usage error (nil stays nil).
func usageErr(err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &usageError{err: err}
}
