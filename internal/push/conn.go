package push

import (
	"sync"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// ref is what the engine keeps of a command awaiting its PUBACK: what
// marking it and OnDelivered need, not its actions.
type ref struct {
	id, thingID string
	createdAt   time.Time
}

func refOf(c *store.Command) ref { return ref{id: c.ID, thingID: c.ThingID, createdAt: c.CreatedAt} }

// conn is the engine's state of one attached connection: its in-flight
// window.
//
// The pushes are numbered here, not by the MQTT stack: the packet IDs of
// the server's PUBLISHes and of the client's are independent (MQTT 2.2.1),
// so a table shared with the client's direction would let a PUBACK the
// server owes pass for the client's PUBACK of a push.
type conn struct {
	c Conn

	mu sync.Mutex
	// inflight holds the QoS 1 pushes written and not yet marked
	// DELIVERED, by packet ID; byCommand indexes it by command ID. A PUBACK
	// only flags its entry; the thing's push loop marks the command and
	// drops the entry, so that a command is never both out of this table
	// and still SENDING in the store while the loop looks (which would
	// push it twice).
	inflight  map[uint16]*entry
	byCommand map[string]uint16
	lastID    uint16 // the packet ID of the latest push
	unacked   int    // entries of inflight not yet acknowledged
	// windowFull is set when a push found the window full: the next PUBACK
	// wakes a scan.
	windowFull bool
}

type entry struct {
	ref   ref
	acked bool
}

// push writes c at the connection's QoS (capped at 1) and returns that QoS.
// A QoS 1 push takes the next free packet ID and stays in the table until
// its PUBACK is handled; it fails with errWindowFull when Window pushes
// await their PUBACK.
//
// PROTOCOL.md §8: things subscribed at QoS 0 parse a QoS 0 PUBLISH only, so
// they never get a QoS 1 one. A QoS 0 push counts as delivered once
// written: nothing else can be known.
func (cn *conn) push(c *store.Command, payload []byte) (byte, error) {
	qos := min(cn.c.QoS(), 1)
	if qos == 0 {
		return 0, cn.c.WritePush(*c, payload, 0, 0)
	}
	id, ok := cn.await(c, cn.c.Window())
	if !ok {
		return qos, errWindowFull
	}
	if err := cn.c.WritePush(*c, payload, qos, id); err != nil {
		cn.forget(id)
		return qos, err
	}
	return qos, nil
}

// await gives a QoS 1 push of c the next packet ID no push in the table
// holds. It returns false, and flags the window full, when window pushes
// await their PUBACK.
func (cn *conn) await(c *store.Command, window int) (uint16, bool) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.unacked >= window || len(cn.inflight) >= 1<<16-1 {
		cn.windowFull = true
		return 0, false
	}
	if cn.inflight == nil {
		cn.inflight = make(map[uint16]*entry)
		cn.byCommand = make(map[string]uint16)
	}
	for { // fewer than 65,535 entries (checked above): this ends
		cn.lastID++
		if cn.lastID == 0 {
			cn.lastID = 1
		}
		if _, taken := cn.inflight[cn.lastID]; !taken {
			break
		}
	}
	cn.inflight[cn.lastID] = &entry{ref: refOf(c)}
	cn.byCommand[c.ID] = cn.lastID
	cn.unacked++
	return cn.lastID, true
}

// forget drops a push whose write failed.
func (cn *conn) forget(id uint16) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if e, ok := cn.inflight[id]; ok {
		cn.drop(id, e)
		if !e.acked {
			cn.unacked--
		}
	}
}

// drop removes an entry; cn.mu is held.
func (cn *conn) drop(id uint16, e *entry) {
	delete(cn.inflight, id)
	if cn.byCommand[e.ref.id] == id {
		delete(cn.byCommand, e.ref.id)
	}
}

// ack flags the push with the given packet ID as acknowledged. known
// reports whether such a push awaited its PUBACK; full whether the window
// was full, which the PUBACK ends.
func (cn *conn) ack(id uint16) (known, full bool) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	e, ok := cn.inflight[id]
	if !ok || e.acked {
		return false, false
	}
	e.acked = true
	cn.unacked--
	full, cn.windowFull = cn.windowFull, false
	return true, full
}

// takeAcked removes the acknowledged pushes and returns them.
func (cn *conn) takeAcked() []ref {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	var rs []ref
	for id, e := range cn.inflight {
		if e.acked {
			rs = append(rs, e.ref)
			cn.drop(id, e)
		}
	}
	return rs
}

// awaiting reports whether a push of the command is in the table.
func (cn *conn) awaiting(commandID string) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	_, ok := cn.byCommand[commandID]
	return ok
}

// entries returns the number of pushes in the table.
func (cn *conn) entries() int {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return len(cn.inflight)
}
