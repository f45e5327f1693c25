package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile is the data directory's lock (docs/security.md, "Files").
const lockFile = "thingif.lock"

// dirLock is an exclusive flock(2) on DataDir/thingif.lock, held from New
// to Close. Two servers on one database would each trust their own cache
// and in-memory push state; the lock makes the second refuse to start.
//
// The kernel releases a flock when its holder dies, however it dies, so a
// lock file left by a killed process never blocks: only a live holder does.
// The file is never removed: removing it would let a third process lock a
// new file while a second still holds the old one.
type dirLock struct{ f *os.File }

// errDataDirInUse is wrapped by the error of a second server on one data
// directory.
var errDataDirInUse = errors.New("in use by another thingif")

// lockDataDir takes the lock of dir and writes this process's PID into the
// lock file, for the error of the next one to name.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, privateFile)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, pathReason(err))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if pid := readPID(f); pid != "" {
				return nil, fmt.Errorf("data dir %s: %w (pid %s)", dir, errDataDirInUse, pid)
			}
			return nil, fmt.Errorf("data dir %s: %w", dir, errDataDirInUse)
		}
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	// An existing file may have been made with a looser mode.
	if err := f.Chmod(privateFile); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s: %w", dir, pathReason(err))
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s: %w", dir, pathReason(err))
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s: %w", dir, pathReason(err))
	}
	return &dirLock{f: f}, nil
}

// readPID returns the holder's PID from the lock file, or "" if it has not
// written one yet.
func readPID(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid := strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return ""
	}
	return pid
}

// release unlocks and closes the lock file.
func (l *dirLock) release() error {
	// Closing the file releases the flock; the explicit unlock documents it.
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return l.f.Close()
}
