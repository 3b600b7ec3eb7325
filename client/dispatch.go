package client

import (
	"fmt"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// dispatcher decodes the frames a connection receives and applies them to
// the client's state. It belongs to the connection's reader goroutine and
// reuses its message structs between frames.
type dispatcher struct {
	cn *conn

	ping      proto.Ping
	pong      proto.Pong
	fatal     proto.Fatal
	errMsg    proto.Error
	opened    proto.Opened
	closed    proto.Closed
	start     proto.StartOfHistory
	events    proto.Events
	end       proto.EndOfHistory
	unsub     proto.Unsubscribed
	confirmed proto.Confirmed
	commitErr proto.CommitError
	lockRes   proto.LockResult

	// With wire encryption, a large frame is decrypted out of place into
	// open (see openAside), and a subscription may take that buffer as its
	// block instead of copying the events out of it; aside is set while
	// the frame being dispatched lies there.
	open  []byte
	aside bool
}

func decodeErr(t proto.MsgType, err error) error {
	return &ProtocolError{Msg: t.String(), Reason: "undecodable", Err: err}
}

// openAside decrypts sealed, a frame of at least rxOpenAsideMin bytes,
// into d.open rather than in place, and returns the plaintext: an Events
// frame's events are then already in a buffer that its subscription can
// take over, and are not copied once more. Decrypting out of place costs
// what decrypting in place does.
func (d *dispatcher) openAside(sc *kex.Conn, sealed []byte) ([]byte, error) {
	if n := len(sealed) - kex.TagSize; cap(d.open) < n {
		const page = 4 << 10
		d.open = make([]byte, 0, (n+page-1)/page*page)
	}
	pt, err := sc.OpenFrameTo(d.open[:0], sealed)
	if err != nil {
		return nil, err
	}
	d.aside = true
	return pt, nil
}

// endAside ends the dispatch of a frame opened by openAside: the buffer,
// unless a subscription took it (and left a recycled one or nil), stays
// for the next frame, up to rxSlotMax bytes.
func (d *dispatcher) endAside() {
	d.aside = false
	if cap(d.open) > rxSlotMax {
		d.open = nil
	}
}

// dispatch handles one frame body. A returned error ends the connection.
func (d *dispatcher) dispatch(body []byte) error {
	t, err := proto.PeekType(body)
	if err != nil {
		return &ProtocolError{Msg: "frame", Reason: "unknown message", Err: err}
	}
	var m proto.Message
	switch t {
	case proto.TypePing:
		m = &d.ping
	case proto.TypePong:
		m = &d.pong
	case proto.TypeFatal:
		m = &d.fatal
	case proto.TypeError:
		m = &d.errMsg
	case proto.TypeOpened:
		m = &d.opened
	case proto.TypeClosed:
		m = &d.closed
	case proto.TypeStartHistory:
		m = &d.start
	case proto.TypeEvents:
		m = &d.events
	case proto.TypeEndHistory:
		m = &d.end
	case proto.TypeUnsubscribed:
		m = &d.unsub
	case proto.TypeConfirmed:
		m = &d.confirmed
	case proto.TypeCommitError:
		m = &d.commitErr
	case proto.TypeLockResult:
		m = &d.lockRes
	default:
		return &ProtocolError{Msg: t.String(), Reason: "not a message a server sends to this client"}
	}
	if err := m.Decode(body); err != nil {
		return decodeErr(t, err)
	}
	cn := d.cn
	c := cn.c
	if t == proto.TypePing {
		cn.send(&proto.Pong{ID: d.ping.ID})
		return nil
	}
	if t == proto.TypeFatal {
		return &ServerError{Op: "session", Code: d.fatal.Code, Reason: d.fatal.Reason, Fatal: true}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch t {
	case proto.TypePong:
		if r := c.reqs[d.pong.ID]; r != nil && r.kind == reqPing {
			delete(c.reqs, d.pong.ID)
			r.done <- nil
		}
	case proto.TypeError:
		c.onErrorLocked(&d.errMsg)
	case proto.TypeOpened:
		if st := c.chans[d.opened.Channel]; st != nil && st.kind == chanBase && st.chain.opening != nil {
			st.chain.opening.done <- nil
			st.chain.opening = nil
		}
	case proto.TypeClosed:
		if st := c.chans[d.closed.Channel]; st != nil && st.closing {
			delete(c.chans, d.closed.Channel)
		}
	case proto.TypeStartHistory:
		if d.start.Count > d.start.Head {
			return &ProtocolError{Msg: "StartOfHistory", Reason: fmt.Sprintf("count %d exceeds head %d", d.start.Count, d.start.Head)}
		}
		if s := c.subLocked(d.start.Channel); s != nil {
			s.onStart(&d.start)
		}
	case proto.TypeEvents:
		if s := c.subLocked(d.events.Channel); s != nil {
			var own *[]byte
			if d.aside {
				own = &d.open
			}
			s.onEvents(&d.events, own)
		}
	case proto.TypeEndHistory:
		if s := c.subLocked(d.end.Channel); s != nil {
			s.onEndOfHistory(&d.end)
		}
	case proto.TypeUnsubscribed:
		if s := c.subLocked(d.unsub.Channel); s != nil {
			s.onUnsubscribed(&d.unsub)
		}
	case proto.TypeConfirmed:
		m := &d.confirmed
		if f := c.appends[m.CommitID]; f != nil && f.ch == m.Channel && f.gen == c.gen {
			if len(m.Offsets) != len(f.events) {
				return &ProtocolError{Msg: "Confirmed", Reason: "offset count differs from the batch's event count"}
			}
			offs := f.oneOff[:0]
			if len(m.Offsets) > len(f.oneOff) {
				offs = make([]uint64, 0, len(m.Offsets))
			}
			f.completeLocked(append(offs, m.Offsets...), nil)
		}
	case proto.TypeCommitError:
		m := &d.commitErr
		if f := c.appends[m.CommitID]; f != nil && f.ch == m.Channel && f.gen == c.gen {
			f.completeLocked(nil, &CommitError{CommitID: m.CommitID, Code: m.Code, Reason: m.Reason,
				Index: m.Index, Head: m.Head, Aborted: m.Code == proto.CodeAborted})
			f.chain.failedLocked(f, m.Code)
		}
	case proto.TypeLockResult:
		m := &d.lockRes
		r := c.reqs[m.ID]
		if r == nil {
			return nil // its waiter gave up (ctx)
		}
		if (r.kind != reqLock && r.kind != reqUnlock) || r.key != m.Key {
			return &ProtocolError{Msg: "LockResult", Reason: fmt.Sprintf("id %d does not answer a lock request for key %d", m.ID, m.Key)}
		}
		delete(c.reqs, m.ID)
		op := "lock"
		if r.kind == reqUnlock {
			op = "unlock"
		}
		if m.Code != proto.CodeOK {
			r.done <- &ServerError{Op: op, Code: m.Code, Reason: m.Reason}
			return nil
		}
		if r.kind == reqLock {
			r.chain.locks[m.Key] = c.gen
		} else {
			delete(r.chain.locks, m.Key)
		}
		r.done <- nil
	}
	return nil
}

// subLocked returns the live subscription on channel num, or nil.
func (c *Client) subLocked(num uint32) *Subscription {
	st := c.chans[num]
	if st == nil || st.kind != chanSub || st.closing {
		return nil
	}
	return st.sub
}

// onErrorLocked routes a channel-scoped Error to what it refuses.
func (c *Client) onErrorLocked(m *proto.Error) {
	st := c.chans[m.Channel]
	if st == nil {
		return
	}
	if m.Request == proto.TypeClose {
		if st.closing { // the channel was not open (its Open failed): the number is free
			delete(c.chans, m.Channel)
		}
		return
	}
	switch st.kind {
	case chanSub:
		if !st.closing {
			st.sub.onError(m)
		}
	case chanBase:
		if m.Request == proto.TypeOpen {
			err := &ServerError{Op: "open " + st.chain.key, Code: m.Code, Reason: m.Reason}
			if st.chain.opening != nil {
				st.chain.opening.done <- err
				st.chain.opening = nil
			}
			c.o.log.Warn("atedb client: chain refused", "chain", st.chain.key, "err", err)
		}
	}
}
