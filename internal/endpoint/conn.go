package endpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Conn is one client connection.
type Conn struct {
	srv    *Server
	nc     net.Conn
	remote string

	// Set during the CONNECT, read-only afterwards.
	id            string
	version       byte
	keepalive     time.Duration // 1.5 × the client's keep-alive; 0: none
	receiveMax    uint16        // the client's Receive Maximum, capped at the server's
	maxPacket     uint32        // the client's Maximum Packet Size; 0: none
	noProblemInfo bool          // the client asked for no reason strings
	admitted      bool
	session       any
	addrKey       string // the per-address count it holds

	wmu    sync.Mutex // held for each write
	closed atomic.Bool

	// Owned by the read loop.
	rd   reader
	qos2 map[uint16]struct{} // QoS 2 requests awaiting their PUBREL
}

// ID returns the client ID (after Handler.Connect, the one it set).
func (c *Conn) ID() string { return c.id }

// SetID renames the connection; only Handler.Connect may call it.
func (c *Conn) SetID(id string) { c.id = id }

// Remote returns the client's address, "ip:port".
func (c *Conn) Remote() string { return c.remote }

// Version returns the MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5.
func (c *Conn) Version() byte { return c.version }

// ReceiveMaximum returns how many QoS 1 and 2 PUBLISHes the client takes
// unacknowledged: its MQTT 5 Receive Maximum, capped at the server's
// Config.MaxInflight, or that for MQTT 3.
func (c *Conn) ReceiveMaximum() int { return int(c.receiveMax) }

// Session returns what Handler.Connect attached.
func (c *Conn) Session() any { return c.session }

// SetSession attaches the handler's state; only Handler.Connect may call
// it.
func (c *Conn) SetSession(v any) { c.session = v }

// Closed reports whether the connection has ended.
func (c *Conn) Closed() bool { return c.closed.Load() }

// ErrClosed is returned by writes to an ended connection.
var ErrClosed = errors.New("connection closed")

// close ends the connection; it may be called any number of times.
func (c *Conn) close() {
	if c.closed.CompareAndSwap(false, true) {
		c.nc.Close()
	}
}

// Close ends the connection without a DISCONNECT.
func (c *Conn) Close() { c.close() }

// Disconnect ends the connection; MQTT 5 clients get a DISCONNECT with
// code first. It never waits long: when another write holds the
// connection for more than disconnectWait (50 ms), or the DISCONNECT
// cannot be written within a second, the socket is closed without it.
func (c *Conn) Disconnect(code packets.Code) {
	if c.version == 5 && !c.closed.Load() && c.lockBriefly(disconnectWait) {
		pk := disconnectPacket(code)
		buf := getWriteBuffer()
		if c.encode(buf, &pk) == nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(min(c.srv.cfg.WriteTimeout, time.Second)))
			_, _ = c.nc.Write(buf.Bytes())
		}
		putWriteBuffer(buf)
		c.wmu.Unlock()
	}
	c.close()
}

// disconnectWait bounds how long Disconnect waits for a write in progress
// (a CONNACK whose writer has not yet let go of the lock, a push) before it
// closes the socket without its DISCONNECT: a client that reads gets the
// reason; one that does not cannot hold the caller up.
const disconnectWait = 50 * time.Millisecond

// lockBriefly takes wmu if it is free within d.
func (c *Conn) lockBriefly(d time.Duration) bool {
	if c.wmu.TryLock() {
		return true
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && !c.closed.Load() {
		time.Sleep(time.Millisecond)
		if c.wmu.TryLock() {
			return true
		}
	}
	return false
}

func disconnectPacket(code packets.Code) packets.Packet {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: code.Code}
	if code.Code >= packets.ErrUnspecifiedError.Code {
		pk.Properties.ReasonString = code.Reason
	}
	return pk
}

// Write writes packets in one write, within the write timeout. A packet
// larger than the client's MQTT 5 Maximum Packet Size is left out (and
// packets.ErrPacketTooLarge returned after the others are written); any
// other failure closes the connection.
func (c *Conn) Write(pks ...*packets.Packet) error {
	buf := getWriteBuffer()
	defer putWriteBuffer(buf)
	var tooLarge error
	for _, pk := range pks {
		start := buf.Len()
		if err := c.encode(buf, pk); err != nil {
			buf.Truncate(start)
			if !errors.Is(err, packets.ErrPacketTooLarge) {
				return fmt.Errorf("encode %s: %w", packets.PacketNames[pk.FixedHeader.Type], err)
			}
			tooLarge = err
		}
	}
	if buf.Len() == 0 {
		return tooLarge
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout)); err != nil {
		c.close()
		return err
	}
	if _, err := c.nc.Write(buf.Bytes()); err != nil {
		c.close()
		return err
	}
	return tooLarge
}

// encode appends pk, in the connection's protocol version, to buf.
func (c *Conn) encode(buf *bytes.Buffer, pk *packets.Packet) error {
	pk.ProtocolVersion = c.version
	pk.Mods.MaxSize = c.maxPacket
	pk.Mods.DisallowProblemInfo = c.noProblemInfo
	pk.Mods.AllowResponseInfo = pk.FixedHeader.Type != packets.Connack
	start := buf.Len()
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackEncode(buf)
	case packets.Publish:
		err = pk.PublishEncode(buf)
	case packets.Puback:
		err = pk.PubackEncode(buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(buf)
	case packets.Suback:
		err = pk.SubackEncode(buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(buf)
	default:
		err = packets.ErrNoValidPacketAvailable
	}
	if err == nil && c.maxPacket > 0 && uint32(buf.Len()-start) > c.maxPacket {
		err = packets.ErrPacketTooLarge // [MQTT-3.1.2-24]
	}
	return err
}

// Write buffers are pooled; one that grew past maxPooledWrite (a large
// push) is dropped rather than kept.
const maxPooledWrite = 64 << 10

var writeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getWriteBuffer() *bytes.Buffer {
	b := writeBuffers.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putWriteBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledWrite {
		writeBuffers.Put(b)
	}
}

// serve runs the connection: its CONNECT, then the read loop, then the
// Handler's Disconnected. The connection's own goroutine only waits for
// bytes (reader.idle); everything else runs on short-lived goroutines
// (deep), so that it lives in its initial 2 KiB stack.
func (c *Conn) serve() {
	var err error
	if p := deep(func() {
		if err = c.handshake(); err == nil {
			c.readDeadline()
		}
	}); p != nil {
		err = panicError{p}
	}
	for err == nil {
		if err = c.rd.idle(); err == nil {
			if p := deep(func() { err = c.next() }); p != nil {
				err = panicError{p}
			}
		}
	}
	if p := deep(func() { c.finish(err) }); p != nil {
		panic(p)
	}
	if pe, ok := err.(panicError); ok {
		panic(pe.v) // for Server.end to log
	}
}

// panicError ends a connection on which the handling of a packet
// panicked: the connection ends as on any other error (its Handler's
// Disconnected runs, so no session outlives it), then the panic is raised
// again for Server.end to log.
type panicError struct{ v any }

func (e panicError) Error() string { return fmt.Sprintf("panic handling a packet (%T)", e.v) }

// readDeadline sets the deadline of the next packet: 1.5 × keep-alive.
func (c *Conn) readDeadline() {
	if c.keepalive > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.keepalive)) // [MQTT-3.1.2-24]
	}
}

// next reads and handles one packet, then sets the next one's deadline.
func (c *Conn) next() error {
	fh, body, err := c.rd.packet(c.srv.cfg.MaxPacketSize)
	if err == nil {
		err = c.handle(fh, body)
	}
	if err == nil {
		c.readDeadline()
	}
	return err
}

// finish ends the connection: an error that is an MQTT 5 reason code is
// sent to MQTT 5 clients in a DISCONNECT, and an accepted connection's
// Handler hears of its end.
func (c *Conn) finish(err error) {
	c.rd.release()
	if errors.Is(err, errClientDisconnect) {
		err = nil
	}
	var code packets.Code
	var pe panicError
	if errors.As(err, &pe) {
		c.Disconnect(packets.ErrUnspecifiedError)
	} else if c.version == 5 && errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code {
		c.Disconnect(code)
	}
	if c.admitted {
		c.srv.h.Disconnected(c, err)
	}
	c.close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.srv.cfg.Logger.Debug("connection ended", "client", c.id, "remote", c.remote, "error", err)
	}
}

// handshake reads and answers the CONNECT.
func (c *Conn) handshake() error {
	s := c.srv
	_ = c.nc.SetDeadline(time.Now().Add(s.cfg.ConnectTimeout))
	c.rd.attach(c.nc)
	fh, body, err := c.rd.packet(s.cfg.MaxPacketSize)
	if err != nil {
		return fmt.Errorf("read CONNECT: %w", err)
	}
	if fh.Type != packets.Connect {
		return packets.ErrProtocolViolationRequireFirstConnect // [MQTT-3.1.0-1]
	}
	pk := packets.Packet{FixedHeader: fh}
	if err := safeDecode(pk.ConnectDecode, body); err != nil {
		return fmt.Errorf("decode CONNECT: %w", err)
	}
	c.version = pk.ProtocolVersion
	if code := validateConnect(&pk); code != packets.CodeSuccess {
		return c.refuse(code, code)
	}
	c.id = pk.Connect.ClientIdentifier
	c.keepalive = time.Duration(pk.Connect.Keepalive) * 1500 * time.Millisecond
	c.receiveMax = s.cfg.MaxInflight
	if c.version == 5 {
		p := &pk.Properties
		if p.ReceiveMaximum > 0 && p.ReceiveMaximum < c.receiveMax {
			c.receiveMax = p.ReceiveMaximum
		}
		c.maxPacket = p.MaximumPacketSize
		c.noProblemInfo = p.RequestProblemInfoFlag && p.RequestProblemInfo == 0
	}
	if r := s.h.Connect(s.ctx, c, &pk); r != Accept {
		v5, _ := r.codes()
		return c.refuse(v5, r)
	}
	c.admitted = true
	s.admit(c)
	if err := c.Write(c.connack(&pk)); err != nil {
		return err
	}
	_ = c.nc.SetDeadline(time.Time{})
	return nil
}

// validateConnect checks what the codec's ConnectValidate leaves out.
func validateConnect(pk *packets.Packet) packets.Code {
	if code := pk.ConnectValidate(); code != packets.CodeSuccess { // [MQTT-3.1.4-1]
		return code
	}
	if pk.ProtocolVersion < 5 && !pk.Connect.Clean && pk.Connect.ClientIdentifier == "" {
		return packets.ErrClientIdentifierNotValid // [MQTT-3.1.3-8]
	}
	return packets.CodeSuccess
}

// refuse writes the CONNACK of a refused CONNECT and returns why, as an
// error. why is a packets.Code (refused before the Handler) or a Refusal.
func (c *Conn) refuse(v5 packets.Code, why any) error {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}
	if c.version == 5 {
		ack.ReasonCode = v5.Code
		ack.Properties.ReasonString = v5.Reason
	} else if r, ok := why.(Refusal); ok {
		_, ack.ReasonCode = r.codes()
	} else {
		ack.ReasonCode = v3Code(v5)
	}
	if c.version < 3 || c.version > 5 {
		c.version = 4 // an unknown level: answer in 3.1.1's form
	}
	if err := c.Write(&ack); err != nil {
		return fmt.Errorf("CONNACK: %w", err)
	}
	return fmt.Errorf("CONNECT refused: %w", v5)
}

// connack is the CONNACK of an accepted CONNECT. MQTT 5 clients learn the
// server's limits from it: no session is kept (a requested expiry comes
// back as 0), no topic aliases, wildcard, shared or identified
// subscriptions.
func (c *Conn) connack(pk *packets.Packet) *packets.Packet {
	ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}
	if c.version != 5 {
		return ack
	}
	p := &ack.Properties
	p.ReceiveMaximum = c.srv.cfg.MaxInflight
	p.MaximumPacketSize = c.srv.cfg.MaxPacketSize
	p.WildcardSubAvailable, p.WildcardSubAvailableFlag = 0, true
	p.SubIDAvailable, p.SubIDAvailableFlag = 0, true
	p.SharedSubAvailable, p.SharedSubAvailableFlag = 0, true
	if pk.Properties.SessionExpiryInterval > 0 {
		p.SessionExpiryInterval, p.SessionExpiryIntervalFlag = 0, true // [MQTT-3.2.2-3]
	}
	return ack
}

// errRefusedPublish ends a connection whose PUBLISH the Handler refused.
var errRefusedPublish = packets.ErrNotAuthorized

// errClientDisconnect: the client sent DISCONNECT.
var errClientDisconnect = errors.New("client disconnected")

// handle acts on one packet read after the CONNECT.
func (c *Conn) handle(fh packets.FixedHeader, body []byte) error {
	s := c.srv
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: c.version}
	switch fh.Type {
	case packets.Publish:
		return c.publish(&pk, body)
	case packets.Puback:
		err := safeDecode(pk.PubackDecode, body)
		if err == nil {
			s.h.Puback(c, pk.PacketID)
		}
		return err
	case packets.Pubrel:
		return c.pubrel(&pk, body)
	case packets.Pubrec, packets.Pubcomp:
		return nil // the server sends no QoS 2 PUBLISH: nothing awaits these
	case packets.Subscribe:
		return c.subscribe(&pk, body)
	case packets.Unsubscribe:
		return c.unsubscribe(&pk, body)
	case packets.Pingreq:
		return c.Write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}})
	case packets.Disconnect:
		return errClientDisconnect // its will, if any, is never published
	case packets.Connect:
		return packets.ErrProtocolViolationSecondConnect // [MQTT-3.1.0-2]
	case packets.Auth:
		return packets.ErrProtocolViolation // no authentication method was agreed
	default:
		return packets.ErrProtocolViolation
	}
}

// deep runs f, the handling of a packet (decoding, a Handler's Connect or
// Publish with the store and the whole HTTP handler behind them,
// encoding, the write), on a goroutine of its own and waits for it. The
// connection's goroutine thus never grows its stack past the read loop's
// few small frames: a goroutine's stack stays at its largest size until a
// garbage collection finds it idle (and the memory freed then stays with
// the process), so 19,000 idle things would otherwise hold 8 to 16 KiB of
// stack each instead of 2 (BenchmarkIdleConnMemory). A panic in f is
// recovered and returned.
func deep(f func()) (panicked any) {
	var v any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { v = recover() }()
		f()
	}()
	<-done
	return v
}

// safeDecode runs a codec decode function, turning a panic into a
// malformed-packet error: the codec indexes some inputs without checking
// their length (FuzzConn found a SUBSCRIBE that did), and no input may end
// more than its own connection.
func safeDecode(decode func([]byte) error, body []byte) (err error) {
	defer func() {
		if recover() != nil {
			err = packets.ErrMalformedPacket
		}
	}()
	return decode(body)
}

// decodeErr makes a decode failure a malformed-packet error, keeping the
// codec's reason code when it gave one.
func decodeErr(kind string, err error) error {
	var code packets.Code
	if errors.As(err, &code) {
		return fmt.Errorf("decode %s: %w", kind, code)
	}
	return fmt.Errorf("decode %s: %w: %w", kind, packets.ErrMalformedPacket, err)
}

func (c *Conn) publish(pk *packets.Packet, body []byte) error {
	if err := safeDecode(pk.PublishDecode, body); err != nil {
		return decodeErr("PUBLISH", err)
	}
	// Topic aliases are not offered (no Topic Alias Maximum in the
	// CONNACK): one is a protocol error, 0x94.
	if code := pk.PublishValidate(0); code != packets.CodeSuccess {
		return code
	}
	id := pk.PacketID
	if pk.FixedHeader.Qos == 2 {
		if _, dup := c.qos2[id]; dup { // [MQTT-4.3.3-10]: not served twice
			return c.Write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: id})
		}
		if len(c.qos2) >= int(c.srv.cfg.MaxInflight) {
			return packets.ErrReceiveMaximum // [MQTT-3.3.4-9]
		}
	}
	answer, ok := c.srv.h.Publish(c.srv.ctx, c, pk)
	if !ok {
		return errRefusedPublish
	}
	out := make([]*packets.Packet, 0, 2)
	if answer != nil {
		out = append(out, answer)
	}
	switch pk.FixedHeader.Qos {
	case 1:
		out = append(out, &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
	case 2:
		if c.qos2 == nil {
			c.qos2 = make(map[uint16]struct{})
		}
		c.qos2[id] = struct{}{}
		out = append(out, &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: id})
	}
	if len(out) == 0 {
		return nil
	}
	if err := c.Write(out...); err != nil && !errors.Is(err, packets.ErrPacketTooLarge) {
		return err
	}
	return nil
}

func (c *Conn) pubrel(pk *packets.Packet, body []byte) error {
	if err := safeDecode(pk.PubrelDecode, body); err != nil {
		return decodeErr("PUBREL", err)
	}
	comp := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: pk.PacketID}
	if _, ok := c.qos2[pk.PacketID]; ok {
		delete(c.qos2, pk.PacketID)
		if len(c.qos2) == 0 {
			c.qos2 = nil
		}
	} else if c.version == 5 {
		comp.ReasonCode = packets.ErrPacketIdentifierNotFound.Code // [MQTT-4.3.3-13]
	}
	return c.Write(comp)
}

func (c *Conn) subscribe(pk *packets.Packet, body []byte) error {
	if err := safeDecode(pk.SubscribeDecode, body); err != nil {
		return decodeErr("SUBSCRIBE", err)
	}
	if code := pk.SubscribeValidate(); code != packets.CodeSuccess {
		return code
	}
	codes := make([]byte, len(pk.Filters))
	for i, sub := range pk.Filters {
		switch {
		case !c.srv.h.Subscribe(c, sub):
			codes[i] = packets.ErrNotAuthorized.Code
			if c.version < 5 {
				codes[i] = packets.ErrUnspecifiedError.Code // 0x80, MQTT 3's only failure
			}
		default:
			codes[i] = min(sub.Qos, 2)
		}
	}
	ack := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: pk.PacketID, ReasonCodes: codes}
	if err := c.Write(ack); err != nil {
		return err
	}
	c.srv.h.Subscribed(c, pk, codes)
	return nil
}

func (c *Conn) unsubscribe(pk *packets.Packet, body []byte) error {
	if err := safeDecode(pk.UnsubscribeDecode, body); err != nil {
		return decodeErr("UNSUBSCRIBE", err)
	}
	if code := pk.UnsubscribeValidate(); code != packets.CodeSuccess {
		return code
	}
	codes := make([]byte, len(pk.Filters))
	for i, sub := range pk.Filters {
		if !c.srv.h.Unsubscribe(c, sub.Filter) {
			codes[i] = packets.CodeNoSubscriptionExisted.Code
		}
	}
	return c.Write(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsuback}, PacketID: pk.PacketID, ReasonCodes: codes})
}

// reader reads MQTT packets from a connection. While no bytes are
// waiting it holds no buffer: it blocks in a read into a 2-byte array,
// and takes a pooled buffer only when bytes arrive, giving it back once
// they are used up. Each packet's body is read into a slice of its own,
// exactly its size (the decoded packet keeps slices of it).
//
// On a plain TCP connection it reads through the socket's RawConn
// instead: the buffer is taken when the socket is readable and given back
// if the read finds nothing, so one system call reads the whole packet
// (and what follows it) where the 2-byte read and the read of the rest
// took two.
type reader struct {
	nc   net.Conn
	raw  syscall.RawConn // nc's, when nc is a *net.TCPConn; else nil
	tiny [2]byte
	buf  *[]byte // pooled; nil while idle
	r, w int
	held atomic.Bool // buf != nil, for tests to read from outside the loop
}

// attach makes nc the connection read.
func (rd *reader) attach(nc net.Conn) {
	rd.nc, rd.raw = nc, nil
	if tc, ok := nc.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			rd.raw = raw
		}
	}
}

const readBufferSize = 4 << 10

var readBuffers = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// release gives the buffer back when nothing is buffered.
func (rd *reader) release() {
	if rd.buf != nil && rd.r == rd.w {
		readBuffers.Put(rd.buf)
		rd.buf, rd.r, rd.w = nil, 0, 0
		rd.held.Store(false)
	}
}

// idle waits, holding no buffer, until bytes arrive, when none are
// buffered. It is called straight from the read loop, so that a waiting
// connection's stack holds only the loop's frames and the socket's.
func (rd *reader) idle() error {
	rd.release()
	if rd.buf != nil {
		return nil
	}
	return rd.fill()
}

// fill reads more bytes; it is called only when none are buffered.
func (rd *reader) fill() error {
	if rd.buf == nil && rd.raw != nil {
		return rd.rawFill()
	}
	if rd.buf == nil {
		for {
			n, err := rd.nc.Read(rd.tiny[:])
			if n > 0 {
				rd.buf = readBuffers.Get().(*[]byte)
				rd.held.Store(true)
				rd.r, rd.w = 0, copy(*rd.buf, rd.tiny[:n])
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	for {
		n, err := rd.nc.Read(*rd.buf)
		if n > 0 {
			rd.r, rd.w = 0, n
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// rawFill waits until the socket is readable and reads what it has into
// a pooled buffer, taken only for the read. The wait honours the
// connection's read deadline and its closing, as Read does.
func (rd *reader) rawFill() error {
	var rerr error
	err := rd.raw.Read(func(fd uintptr) bool {
		buf := readBuffers.Get().(*[]byte)
		for {
			n, err := syscall.Read(int(fd), *buf)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				readBuffers.Put(buf)
				return false // wait until readable
			case err != nil:
				readBuffers.Put(buf)
				rerr = &net.OpError{Op: "read", Net: "tcp", Source: rd.nc.LocalAddr(), Addr: rd.nc.RemoteAddr(), Err: os.NewSyscallError("read", err)}
			case n == 0:
				readBuffers.Put(buf)
				rerr = io.EOF
			default:
				rd.buf, rd.r, rd.w = buf, 0, n
				rd.held.Store(true)
			}
			return true
		}
	})
	if err != nil {
		return err
	}
	return rerr
}

// ReadByte implements io.ByteReader for packets.DecodeLength.
func (rd *reader) ReadByte() (byte, error) {
	if rd.buf == nil || rd.r == rd.w {
		if err := rd.fill(); err != nil {
			return 0, err
		}
	}
	b := (*rd.buf)[rd.r]
	rd.r++
	return b, nil
}

// full reads len(p) bytes into p: what is buffered, then the rest
// straight from the connection.
func (rd *reader) full(p []byte) error {
	n := 0
	if rd.buf != nil {
		n = copy(p, (*rd.buf)[rd.r:rd.w])
		rd.r += n
	}
	if n < len(p) {
		if _, err := io.ReadFull(rd.nc, p[n:]); err != nil {
			return err
		}
	}
	return nil
}

// packet reads one packet: its fixed header, checked, and its body.
func (rd *reader) packet(maxSize uint32) (packets.FixedHeader, []byte, error) {
	rd.release()
	var fh packets.FixedHeader
	b, err := rd.ReadByte()
	if err != nil {
		return fh, nil, err
	}
	if err := fh.Decode(b); err != nil {
		return fh, nil, err
	}
	n, _, err := packets.DecodeLength(rd)
	if err != nil {
		return fh, nil, err
	}
	fh.Remaining = n
	if maxSize > 0 && uint64(n)+1 > uint64(maxSize) {
		return fh, nil, packets.ErrPacketTooLarge // [MQTT-3.2.2-15]
	}
	body := make([]byte, n)
	if err := rd.full(body); err != nil {
		return fh, nil, err
	}
	return fh, body, nil
}

// bufHeld reports whether the reader holds a buffer (tests).
func (rd *reader) bufHeld() bool { return rd.held.Load() }
