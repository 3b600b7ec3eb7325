package netio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/proto"
)

// channel is one chain bound to a channel number of a connection.
type channel struct {
	id       uint32
	h        *chain.Handle
	w        *chain.Writer
	sub      *subscription
	inflight sync.WaitGroup // this channel's appends not yet answered
}

// subscription is a running subscription goroutine.
type subscription struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine has ended
	next   atomic.Uint64 // resume offset: after the last event sent
	// ended is set by the goroutine before it hands the writer its last
	// message (EndOfHistory of a history-only subscription, or
	// Unsubscribed with a failure code): once the client can have seen
	// that message, the channel has no subscription any more.
	ended atomic.Bool
}

// openTimeout bounds how long a request waits for a chain to open.
const openTimeout = 30 * time.Second

// handle decodes and answers one request. A returned error ends the
// connection (a *fatalError is sent to the client first).
func (c *conn) handle(body []byte) error {
	t, chID, _, err := proto.PeekChannel(body)
	if err != nil {
		if errors.Is(err, proto.ErrUnknownMessage) {
			return fatalf(proto.CodeUnknownMessage, "message type 0x%02x is not defined by protocol version %d", body[0], proto.ProtocolVersion)
		}
		return fatalf(proto.CodeMalformed, "%v", err)
	}
	switch t {
	case proto.TypePing:
		var m proto.Ping
		if err := m.Decode(body); err != nil {
			return fatalf(proto.CodeMalformed, "%v", err)
		}
		if !c.acquireSlot() {
			return nil
		}
		c.reply(&proto.Pong{ID: m.ID})
	case proto.TypePong:
		var m proto.Pong
		if err := m.Decode(body); err != nil {
			return fatalf(proto.CodeMalformed, "%v", err)
		}
	case proto.TypeFatal:
		var m proto.Fatal
		if err := m.Decode(body); err == nil {
			c.log.Info("client ended the connection", "code", m.Code.String(), "reason", m.Reason)
		}
		return io.EOF
	case proto.TypeOpen:
		var m proto.Open
		if err := m.Decode(body); err != nil {
			return fatalf(proto.CodeMalformed, "%v", err)
		}
		c.open(m)
	case proto.TypeClose:
		c.closeChannel(chID)
	case proto.TypeSubscribe:
		var m proto.Subscribe
		if err := m.Decode(body); err != nil {
			return fatalf(proto.CodeMalformed, "%v", err)
		}
		c.subscribe(m)
	case proto.TypeUnsubscribe:
		c.unsubscribe(chID)
	case proto.TypeAppend:
		m := &c.appendMsg // reused: its event list does not allocate per request
		if err := m.Decode(body); err != nil {
			return fatalf(proto.CodeMalformed, "%v", err)
		}
		c.append(m)
		if cap(m.Events) > maxKeptEvents {
			m.Events = nil
		}
	case proto.TypeLock, proto.TypeUnlock:
		return c.lock(t, body)
	case proto.TypeProve:
		var m proto.Prove
		if err := m.Decode(body); err != nil {
			return fatalf(proto.CodeMalformed, "%v", err)
		}
		if !c.acquireSlot() {
			return nil
		}
		if c.channelFor(m.Channel) == nil {
			c.reply(&proto.ProveResult{Channel: m.Channel, ID: m.ID, Code: proto.CodeUnknownChannel,
				Reason: fmt.Sprintf("channel %d is not open", m.Channel)})
			break
		}
		c.reply(&proto.ProveResult{Channel: m.Channel, ID: m.ID, Code: proto.CodeDenied,
			Reason: "key proofs are not supported by this server yet: chains are open to every writer"})
	default:
		return fatalf(proto.CodeUnknownMessage, "%s is not a request a client may send", t)
	}
	return nil
}

// replyError answers a request that has no reply type of its own.
func (c *conn) replyError(ch uint32, req proto.MsgType, code proto.ErrorCode, format string, args ...any) {
	if !c.acquireSlot() {
		return
	}
	c.reply(&proto.Error{Channel: ch, Request: req, Code: code, Reason: fmt.Sprintf(format, args...)})
}

// acquire opens key for this connection.
func (c *conn) acquire(key chain.Key) (*chain.Handle, error) {
	ctx, cancel := context.WithTimeout(c.ctx, openTimeout)
	defer cancel()
	if c.existingOnly {
		return c.s.cfg.Registry.AcquireExisting(ctx, key, &c.owner)
	}
	return c.s.cfg.Registry.Acquire(ctx, key, &c.owner)
}

func openCode(err error) proto.ErrorCode {
	var ke *chain.KeyError
	switch {
	case errors.As(err, &ke):
		return proto.CodeInvalidChainKey
	case errors.Is(err, chain.ErrNotFound):
		return proto.CodeNoSuchChain
	case errors.Is(err, chain.ErrClosed):
		return proto.CodeShuttingDown
	case errors.Is(err, context.DeadlineExceeded):
		return proto.CodeTimeout
	}
	return proto.CodeStorageFailure
}

// openChannel0 opens the hello's chain on channel 0 and answers Opened or
// Error.
func (c *conn) openChannel0(key *chain.Key) {
	if !c.acquireSlot() {
		return
	}
	h, err := c.acquire(*key)
	if err != nil {
		c.reply(&proto.Error{Channel: 0, Request: proto.TypeOpen, Code: openCode(err), Reason: err.Error()})
		return
	}
	c.channels[0] = &channel{id: 0, h: h, w: chain.NewIdleWriter(&c.owner, c.readDrained)}
	c.reply(&proto.Opened{Channel: 0})
}

func (c *conn) open(m proto.Open) {
	if _, ok := c.channels[m.Channel]; ok {
		c.replyError(m.Channel, proto.TypeOpen, proto.CodeChannelInUse, "channel %d is already open", m.Channel)
		return
	}
	closing := c.closingCount(m.Channel)
	if closing < 0 {
		c.replyError(m.Channel, proto.TypeOpen, proto.CodeChannelInUse, "channel %d is closing; reuse it once Closed is received", m.Channel)
		return
	}
	if len(c.channels)+closing >= c.s.cfg.MaxChannels {
		c.replyError(m.Channel, proto.TypeOpen, proto.CodeTooManyChannels, "at most %d channels per connection", c.s.cfg.MaxChannels)
		return
	}
	key, err := chain.ParseKey(m.ChainKey)
	if err != nil {
		c.replyError(m.Channel, proto.TypeOpen, proto.CodeInvalidChainKey, "%v", err)
		return
	}
	if !c.acquireSlot() {
		return
	}
	h, err := c.acquire(key)
	if err != nil {
		c.reply(&proto.Error{Channel: m.Channel, Request: proto.TypeOpen, Code: openCode(err), Reason: err.Error()})
		return
	}
	c.channels[m.Channel] = &channel{id: m.Channel, h: h, w: chain.NewIdleWriter(&c.owner, c.readDrained)}
	c.reply(&proto.Opened{Channel: m.Channel})
}

// closeChannel closes channel id without waiting: the channel leaves the
// reader's table at once (later requests on it get CodeUnknownChannel, an
// Open of its number CodeChannelInUse), and a goroutine waits for its
// subscription to stop and its appends to be answered, releases the
// chain and answers Closed. So a Close never holds up the requests of
// other channels behind an fsync.
func (c *conn) closeChannel(id uint32) {
	ch, ok := c.channels[id]
	if !ok {
		c.replyError(id, proto.TypeClose, proto.CodeUnknownChannel, "channel %d is not open", id)
		return
	}
	if !c.acquireSlot() {
		return
	}
	delete(c.channels, id)
	c.closeMu.Lock()
	c.closing[id] = struct{}{}
	c.closeMu.Unlock()
	if ch.sub != nil {
		ch.sub.cancel()
	}
	c.closers.Go(func() {
		defer func() {
			if p := recover(); p != nil {
				c.s.stats.panics.Add(1)
				c.log.Error("channel close panicked; closing the connection", "panic", p, "stack", string(debug.Stack()))
				c.kill()
			}
		}()
		if ch.sub != nil {
			<-ch.sub.done
		}
		ch.inflight.Wait() // their replies go out before Closed
		ch.h.Release()
		c.closeMu.Lock()
		delete(c.closing, id) // free before the client can see Closed
		c.closeMu.Unlock()
		c.reply(&proto.Closed{Channel: id})
	})
}

// closingCount returns -1 if channel id is closing, and otherwise how
// many channels are.
func (c *conn) closingCount(id uint32) int {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if _, ok := c.closing[id]; ok {
		return -1
	}
	return len(c.closing)
}

// channelFor returns the open channel id, or nil.
func (c *conn) channelFor(id uint32) *channel {
	return c.channels[id]
}

func (c *conn) subscribe(m proto.Subscribe) {
	ch := c.channelFor(m.Channel)
	if ch == nil {
		c.replyError(m.Channel, proto.TypeSubscribe, proto.CodeUnknownChannel, "channel %d is not open", m.Channel)
		return
	}
	if ch.sub != nil && !ch.sub.ended.Load() {
		c.replyError(m.Channel, proto.TypeSubscribe, proto.CodeAlreadySubscribed, "channel %d already has a subscription", m.Channel)
		return
	}
	if ch.sub != nil {
		<-ch.sub.done
		ch.sub = nil
	}
	opts := chain.SubscribeOptions{From: m.From, History: m.History, Live: m.Live}
	if m.FromTime {
		opts.ByTime, opts.FromTime, opts.From = true, time.Unix(0, int64(m.From)), 0
	}
	sub, err := ch.h.Subscribe(opts)
	if err != nil {
		code := proto.CodeStorageFailure
		switch {
		case errors.Is(err, chain.ErrBeyondHead):
			code = proto.CodeConflict
		case errors.Is(err, chain.ErrClosed):
			code = proto.CodeShuttingDown
		}
		c.replyError(m.Channel, proto.TypeSubscribe, code, "%v", err)
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	s := &subscription{cancel: cancel, done: make(chan struct{})}
	s.next.Store(sub.Start())
	ch.sub = s
	c.subsWG.Add(1)
	go c.runSubscription(ctx, ch.id, s, sub, m.Live)
}

// runSubscription streams one subscription: StartOfHistory, the history
// in Events frames built straight from the cursor's records, EndOfHistory,
// then, if live, live Events. It holds one frame of memory; when the client
// reads slowly it waits in sendFrame and its cursor simply lags.
func (c *conn) runSubscription(ctx context.Context, chID uint32, s *subscription, sub *chain.Subscription, live bool) {
	defer c.subsWG.Done()
	defer close(s.done)
	defer sub.Close()
	defer func() {
		if p := recover(); p != nil {
			c.s.stats.panics.Add(1)
			c.log.Error("subscription panicked; closing the connection", "panic", p, "stack", string(debug.Stack()))
			c.kill()
		}
	}()
	f := newFrame()
	send := func(m proto.Message) bool {
		var err error
		f.recs = nil
		f.body, err = m.AppendBinary(f.body[:0])
		if err != nil {
			c.log.Error("subscription message failed to encode", "type", m.Type().String(), "err", err)
			return false
		}
		return c.sendFrame(ctx, f)
	}
	end := func(code proto.ErrorCode, reason string) {
		s.ended.Store(true)
		send(&proto.Unsubscribed{Channel: chID, Code: code, Next: s.next.Load(), Reason: reason})
	}
	start := sub.Start()
	if !send(&proto.StartOfHistory{Channel: chID, Integrity: proto.IntegrityCentralized,
		Head: sub.HistoryEnd(), Count: sub.HistoryEnd() - start}) {
		return
	}
	inHistory := true
	for {
		if inHistory && !sub.InHistory() {
			inHistory = false
			if !live {
				// EndOfHistory ends it: the channel is free for a new
				// Subscribe before the client can have seen it (§6.8).
				s.ended.Store(true)
			}
			if !send(&proto.EndOfHistory{Channel: chID, Next: sub.Position()}) || !live {
				return
			}
		}
		recs, err := sub.Next(ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, chain.ErrClosed):
				end(proto.CodeShuttingDown, "the chain is closing")
			default:
				c.log.Error("subscription failed", "channel", chID, "err", err)
				end(proto.CodeStorageFailure, err.Error())
			}
			return
		}
		f.recs, f.channel = recs, chID
		if !c.sendFrame(ctx, f) {
			return
		}
		s.next.Store(recs[len(recs)-1].Offset + 1)
	}
}

// stopSubscription ends ch's subscription, if any, and waits for it.
func (c *conn) stopSubscription(ch *channel) {
	if ch.sub == nil {
		return
	}
	ch.sub.cancel()
	<-ch.sub.done
}

// stopSubscriptions ends every subscription of the connection and waits
// for them. With shuttingDown, each one that had not ended by itself is
// answered Unsubscribed{shutting down, next}, so that the client knows
// where to resume. Reader (serve) only.
func (c *conn) stopSubscriptions(shuttingDown bool) {
	for _, ch := range c.channels {
		if ch.sub != nil {
			ch.sub.cancel()
		}
	}
	c.subsWG.Wait()
	if !shuttingDown {
		return
	}
	for _, ch := range c.channels {
		if ch.sub == nil || ch.sub.ended.Load() {
			continue
		}
		ch.sub.ended.Store(true)
		if c.acquireSlot() {
			c.reply(&proto.Unsubscribed{Channel: ch.id, Code: proto.CodeShuttingDown, Next: ch.sub.next.Load(),
				Reason: "the server is shutting down"})
		}
	}
}

func (c *conn) unsubscribe(id uint32) {
	ch := c.channelFor(id)
	if ch == nil {
		c.replyError(id, proto.TypeUnsubscribe, proto.CodeUnknownChannel, "channel %d is not open", id)
		return
	}
	if ch.sub == nil || ch.sub.ended.Load() {
		c.replyError(id, proto.TypeUnsubscribe, proto.CodeNotSubscribed, "channel %d has no subscription", id)
		return
	}
	if !c.acquireSlot() {
		return
	}
	c.stopSubscription(ch)
	next := ch.sub.next.Load()
	ch.sub = nil
	c.reply(&proto.Unsubscribed{Channel: id, Code: proto.CodeOK, Next: next})
}

// commitCode maps a chain refusal to its wire code.
func commitCode(code chain.Code) proto.ErrorCode {
	switch code {
	case chain.CodeInvalid:
		return proto.CodeMalformed
	case chain.CodeFuture:
		return proto.CodeClockSkew
	case chain.CodeDuplicate:
		return proto.CodeDuplicate
	case chain.CodeRejected:
		return proto.CodeValidationFailed
	case chain.CodeConflict:
		return proto.CodeConflict
	case chain.CodeAborted:
		return proto.CodeAborted
	case chain.CodeStorage:
		return proto.CodeStorageFailure
	case chain.CodeUnavailable:
		return proto.CodeStorageUnavailable
	case chain.CodeClosed:
		return proto.CodeShuttingDown
	case chain.CodeTooLarge:
		return proto.CodeBatchTooLarge
	}
	return proto.CodeInternal
}

func (c *conn) append(m *proto.Append) {
	if !c.acquireSlot() {
		return
	}
	ch := c.channelFor(m.Channel)
	if ch == nil {
		c.reply(&proto.CommitError{Channel: m.Channel, CommitID: m.CommitID, Code: proto.CodeUnknownChannel, Index: -1,
			Reason: fmt.Sprintf("channel %d is not open (open it, or name a chain in the connection URL, before appending)", m.Channel)})
		return
	}
	if m.Restart {
		// The client has seen the failure that aborts this channel's
		// appends (PROTOCOL.md §5): this batch starts a new pipeline.
		ch.w.Reset()
	}
	chID, id := m.Channel, m.CommitID
	ch.inflight.Add(1)
	c.inflight.Add(1)
	inline := c.readDrained()
	if inline {
		c.deferReplies()
	}
	handed := false
	defer func() {
		if inline {
			c.writeDeferredReplies()
		}
		if !handed {
			// chain.Append panicked before taking the request: undo, so
			// that the teardown after the recovered panic does not wait
			// for an answer that will never come.
			ch.inflight.Done()
			c.inflight.Done()
			<-c.slots
		}
	}()
	ch.h.Append(ch.w, chain.AppendRequest{Events: m.Events, Expect: m.ExpectedNext, HasExpect: m.HasCondition, Seq: id},
		func(r chain.Result) {
			if r.Err != nil {
				c.reply(&proto.CommitError{Channel: chID, CommitID: id, Code: commitCode(r.Err.Code),
					Index: r.Err.Index, Head: r.Err.Head, Reason: r.Err.Reason})
			} else {
				c.replyConfirmed(chID, id, r.First, r.Count)
			}
			ch.inflight.Done()
			c.inflight.Done()
		})
	handed = true
}

// readDrained reports whether the request being handled was the last one
// the connection had read: the reader would now wait on the socket. The
// appends of a drained reader defer their replies, to hand them to the
// socket writer with one wake-up; and it is the idle probe of the
// connection's chain writers (chain.NewIdleWriter): with more requests
// buffered the reader must not wait for an fdatasync, which would commit
// them one at a time.
func (c *conn) readDrained() bool {
	// c.stream is under the session on sealed connections too: its
	// buffer holds the sealed frames not yet read.
	return c.stream != nil && c.stream.FrameReader.Buffered() == 0
}

func (c *conn) lock(t proto.MsgType, body []byte) error {
	var chID uint32
	var id, key uint64
	if t == proto.TypeLock {
		var m proto.Lock
		if err := m.Decode(body); err != nil {
			return fatalf(proto.CodeMalformed, "%v", err)
		}
		chID, id, key = m.Channel, m.ID, m.Key
	} else {
		var m proto.Unlock
		if err := m.Decode(body); err != nil {
			return fatalf(proto.CodeMalformed, "%v", err)
		}
		chID, id, key = m.Channel, m.ID, m.Key
	}
	if !c.acquireSlot() {
		return nil
	}
	res := &proto.LockResult{Channel: chID, ID: id, Key: key}
	ch := c.channelFor(chID)
	switch {
	case ch == nil:
		res.Code, res.Reason = proto.CodeUnknownChannel, fmt.Sprintf("channel %d is not open", chID)
	case t == proto.TypeLock:
		if !ch.h.Lock(&c.owner, key) {
			res.Code, res.Reason = proto.CodeLockHeld, fmt.Sprintf("key %d is locked by another connection", key)
		}
	default:
		switch err := ch.h.Unlock(&c.owner, key); {
		case errors.Is(err, chain.ErrNotLockOwner):
			res.Code, res.Reason = proto.CodeNotLockOwner, fmt.Sprintf("key %d is locked by another connection", key)
		case errors.Is(err, chain.ErrNotLocked):
			res.Code, res.Reason = proto.CodeNotLockOwner, fmt.Sprintf("key %d is not locked", key)
		}
	}
	c.reply(res)
	return nil
}
