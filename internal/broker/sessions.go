package broker

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// sessions maps each accepted mochi client to the broker's state for it,
// stored in OnConnect and deleted in OnDisconnect.
//
// mochi skips OnDisconnect when a connection fails between OnConnect and
// its first read (the CONNACK write failed), so a sweeper also drops the
// entries of closed clients now and then; without it those entries would
// pile up for the life of the process.
type sessions[S any] struct {
	m    sync.Map // *mqtt.Client → *S
	stop chan struct{}
	done chan struct{}
}

func (s *sessions[S]) get(cl *mqtt.Client) *S {
	v, ok := s.m.Load(cl)
	if !ok {
		return nil
	}
	return v.(*S)
}

func (s *sessions[S]) put(cl *mqtt.Client, v *S) { s.m.Store(cl, v) }

func (s *sessions[S]) delete(cl *mqtt.Client) { s.m.Delete(cl) }

// sweep drops the entries of closed clients, calling gone for each.
func (s *sessions[S]) sweep(gone func(*mqtt.Client, *S)) {
	s.m.Range(func(k, v any) bool {
		if cl := k.(*mqtt.Client); cl.Closed() {
			s.m.Delete(cl)
			if gone != nil {
				gone(cl, v.(*S))
			}
		}
		return true
	})
}

// startSweeper sweeps every interval until stopSweeper.
func (s *sessions[S]) startSweeper(interval time.Duration, gone func(*mqtt.Client, *S)) {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.sweep(gone)
			case <-s.stop:
				return
			}
		}
	}()
}

func (s *sessions[S]) stopSweeper() {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
}

// sweepInterval is how often closed clients' leftovers are dropped.
const sweepInterval = time.Minute
