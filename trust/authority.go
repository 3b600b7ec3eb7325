package trust

import (
	"errors"
	"fmt"

	"github.com/atedb/atedb/proto"
)

// MaxDepth bounds how deep objects nest: an object may have at most
// MaxDepth-1 ancestors, and deciding who may write an object never walks
// more than MaxDepth objects.
const MaxDepth = 256

// ErrRefused is matched by every [*RefusalError].
var ErrRefused = errors.New("trust: refused")

// Rule names the tree-authority rule that refused an event.
type Rule uint8

// Rules, in the order [Tx.Check] applies them (docs/TRUST.md §2).
const (
	// RuleRoot: the event is governed by the root write set (a top-level
	// object, or an event without a data key) and none of the keys is a
	// root key.
	RuleRoot Rule = iota + 1
	// RuleObject: the governing object's authorisation is any-of some key
	// hashes and none of the keys is one of them.
	RuleObject
	// RuleNobody: the governing object's authorisation is nobody: it is
	// frozen, and so is everything that inherits from it.
	RuleNobody
	// RuleParentMissing: the event names a parent that does not exist, or
	// the object inherits its rights through an ancestor that no longer
	// exists.
	RuleParentMissing
	// RuleParentChanged: the event names another parent than the object
	// has. An object's parent is fixed when it is created.
	RuleParentChanged
	// RuleNoObject: a tombstone for an object that does not exist.
	RuleNoObject
	// RuleCycle: creating the object under this parent would make it its
	// own ancestor (an orphan further up still names it as its parent).
	RuleCycle
	// RuleTooDeep: the object would have MaxDepth or more ancestors, or its
	// rights are inherited through more than MaxDepth objects.
	RuleTooDeep
)

// String returns the rule's name as docs/TRUST.md and error messages use
// it.
func (r Rule) String() string {
	switch r {
	case RuleRoot:
		return "root"
	case RuleObject:
		return "object"
	case RuleNobody:
		return "nobody"
	case RuleParentMissing:
		return "parent-missing"
	case RuleParentChanged:
		return "parent-changed"
	case RuleNoObject:
		return "no-object"
	case RuleCycle:
		return "cycle"
	case RuleTooDeep:
		return "too-deep"
	}
	return fmt.Sprintf("Rule(%d)", uint8(r))
}

// RefusalError says why an event may not be written. It matches
// [ErrRefused].
type RefusalError struct {
	Rule Rule
	// Object is the data key of the refused event (0: it has none).
	Object uint64
	// Source is the object whose authorisation, absence or parent decided
	// (0: the root write set).
	Source uint64
	// KeyHash is the first key hash presented with the event (zero when
	// none was: an unsigned event, or a connection that proved no key).
	KeyHash proto.Hash
	// Keys is how many key hashes were presented.
	Keys int
}

// Error describes the refusal: the rule, the objects, the key.
func (e *RefusalError) Error() string {
	what := "event without a data key"
	if e.Object != 0 {
		what = fmt.Sprintf("object %d", e.Object)
	}
	src := "the root write set"
	if e.Source != 0 {
		src = fmt.Sprintf("object %d", e.Source)
	}
	key := "no key"
	switch {
	case e.Keys == 1:
		key = "key " + FormatKeyHash(e.KeyHash)
	case e.Keys > 1:
		key = fmt.Sprintf("keys %s and %d more", FormatKeyHash(e.KeyHash), e.Keys-1)
	}
	var why string
	switch e.Rule {
	case RuleRoot, RuleObject:
		why = fmt.Sprintf("%s does not allow %s", src, key)
	case RuleNobody:
		why = fmt.Sprintf("%s is frozen (write authorisation nobody)", src)
	case RuleParentMissing:
		why = fmt.Sprintf("parent %d does not exist", e.Source)
	case RuleParentChanged:
		why = fmt.Sprintf("the event names another parent than %d", e.Source)
	case RuleNoObject:
		why = "tombstone for an object that does not exist"
	case RuleCycle:
		why = fmt.Sprintf("object %d, an ancestor of parent, names it as its parent", e.Source)
	case RuleTooDeep:
		why = fmt.Sprintf("more than %d levels of objects", MaxDepth)
	}
	return fmt.Sprintf("trust: %s refused by rule %v: %s", what, e.Rule, why)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusalError) Is(target error) bool { return target == ErrRefused }

// object is what the state keeps per live object.
type object struct {
	auth   proto.WriteAuth // Keys owned by the state (a copy)
	parent uint64
}

// State is the authority state of one chain: the root keys, the stored
// write authorisation and parent of every live object, and the registered
// public keys. It answers who may write which event ([Tx.Check]) and
// absorbs accepted events ([Tx.Apply], [State.Apply]). It does no I/O.
//
// A State is not safe for concurrent use; the chain's lock guards it. Its
// encoding ([State.AppendBinary], [DecodeState]) is what is checkpointed.
type State struct {
	root     proto.WriteAuth // AuthEveryone (no root keys) or AuthAnyOf
	objects  map[uint64]object
	keys     map[proto.Hash]*regKey
	maxDepth int // MaxDepth; smaller in tests
	txOpen   bool
}

// regKey is a registered public key: raw bytes, parsed on first use.
type regKey struct {
	pk     proto.PublicKey // Key owned by the state
	parsed *PublicKey
}

// NewState returns the state of a chain with no events yet, whose root
// write set is rootKeys (everyone when rootKeys is empty). The hashes are
// copied; order and duplicates do not matter.
func NewState(rootKeys []proto.Hash) *State {
	s := &State{objects: map[uint64]object{}, keys: map[proto.Hash]*regKey{}, maxDepth: MaxDepth}
	s.root.Mode = proto.AuthEveryone
	if len(rootKeys) > 0 {
		s.root = proto.WriteAuth{Mode: proto.AuthAnyOf, Keys: proto.SortHashes(proto.MakeHashList(rootKeys...))}
	}
	return s
}

// RootKeys returns the root key hashes in ascending order (nil when
// everyone may write top-level objects).
func (s *State) RootKeys() []proto.Hash {
	var out []proto.Hash
	for i := range s.root.Keys.Len() {
		out = append(out, s.root.Keys.At(i))
	}
	return out
}

// Objects returns the number of live objects.
func (s *State) Objects() int { return len(s.objects) }

// Auth returns the stored write authorisation and parent of object key,
// and whether it exists. Auth.Keys is shared with the state: do not modify
// it.
func (s *State) Auth(key uint64) (auth proto.WriteAuth, parent uint64, ok bool) {
	o, ok := s.objects[key]
	return o.auth, o.parent, ok
}

// PublicKey returns the registered public key whose key hash is h, parsing
// it on first use. It returns false when no event registered it. The
// returned key is shared and immutable.
func (s *State) PublicKey(h proto.Hash) (*PublicKey, bool) {
	r, ok := s.keys[h]
	if !ok {
		return nil, false
	}
	if r.parsed == nil {
		p, err := PublicKeyFromProto(r.pk)
		if err != nil { // registered keys were checked when registered
			return nil, false
		}
		r.parsed = p
	}
	return r.parsed, true
}

// Apply records the effect of an event without checking it: for replaying
// history that was checked when it was appended. It panics if a
// transaction is open.
func (s *State) Apply(e *proto.Event) {
	if s.txOpen {
		panic("trust: State.Apply while a Tx is open")
	}
	tx := s.Begin()
	tx.record(e)
	tx.Commit()
}

// Begin starts a transaction: the events of one batch are checked and
// applied to the transaction, which only [Tx.Commit] makes part of the
// state, so a refused batch changes nothing. Only one transaction may be
// open at a time, and the state must not be changed while it is (Begin
// panics otherwise).
func (s *State) Begin() *Tx {
	if s.txOpen {
		panic("trust: State.Begin while a Tx is open")
	}
	s.txOpen = true
	return &Tx{s: s, objects: map[uint64]*object{}, keys: map[proto.Hash]*regKey{}}
}

// Tx is a batch being checked against a [State]: an overlay of the
// objects and keys the batch's accepted events changed. Not safe for
// concurrent use.
type Tx struct {
	s       *State
	objects map[uint64]*object // nil: deleted by this batch
	keys    map[proto.Hash]*regKey
	done    bool
}

// get returns object key as the transaction sees it.
func (t *Tx) get(key uint64) (object, bool) {
	if o, ok := t.objects[key]; ok {
		if o == nil {
			return object{}, false
		}
		return *o, true
	}
	o, ok := t.s.objects[key]
	return o, ok
}

// PublicKey returns the public key with hash h if the state or an event
// applied to this transaction registered it.
func (t *Tx) PublicKey(h proto.Hash) (*PublicKey, bool) {
	if r, ok := t.keys[h]; ok {
		if r.parsed == nil {
			p, err := PublicKeyFromProto(r.pk)
			if err != nil {
				return nil, false
			}
			r.parsed = p
		}
		return r.parsed, true
	}
	return t.s.PublicKey(h)
}

// KeyOnly reports whether e needs no authority: it has no data key and
// carries nothing but public key registrations and signatures (at least one
// of them). Every other event is governed by an object or the root set.
func KeyOnly(e *proto.Event) bool {
	return e.DataKey == 0 && (len(e.PublicKeys) > 0 || len(e.Signatures) > 0) &&
		!e.Tombstone && e.Timestamp == 0 && e.Parent == 0 && e.WriteAuth.Mode == proto.AuthInherit &&
		len(e.SignWith) == 0 && len(e.TypeName) == 0 && len(e.Confidentiality) == 0 &&
		len(e.IV) == 0 && len(e.Author) == 0 && len(e.Data) == 0
}

// Check decides whether an event may be written by a writer holding the
// keys whose hashes are keys (the keys that signed it in distributed
// trust, the keys the connection proved in centralized trust; empty for
// neither), given the state and the events already applied to t. It
// returns nil or a [*RefusalError]. It changes nothing.
//
// The rules, in order (docs/TRUST.md §2): an event with no data key is
// free when it only registers keys or carries signatures ([KeyOnly]), else
// the root write set decides. For an existing object, the event must name
// the object's parent, and the object's effective authorisation decides.
// Creating an object: a tombstone needs an existing object; a top-level
// object is decided by the root set; otherwise the parent must exist, must
// not descend from the new object, must have fewer than MaxDepth-1
// ancestors, and the parent's effective authorisation decides. The
// effective authorisation of an object is its stored one, or, when that is
// inherit, its parent's, up to the root set for a top-level object. An
// event's own write authorisation never decides whether it may be written.
// Check panics after [Tx.Commit] or [Tx.Abort].
func (t *Tx) Check(e *proto.Event, keys []proto.Hash) error {
	if t.done {
		panic("trust: Tx used after Commit or Abort")
	}
	refuse := func(r Rule, src uint64) error {
		err := &RefusalError{Rule: r, Object: e.DataKey, Source: src, Keys: len(keys)}
		if len(keys) > 0 {
			err.KeyHash = keys[0]
		}
		return err
	}
	decide := func(auth proto.WriteAuth, src uint64) error {
		switch auth.Mode {
		case proto.AuthEveryone:
			return nil
		case proto.AuthNobody:
			return refuse(RuleNobody, src)
		}
		for _, k := range keys {
			if auth.Keys.Contains(k) {
				return nil
			}
		}
		if src == 0 {
			return refuse(RuleRoot, 0)
		}
		return refuse(RuleObject, src)
	}
	if e.DataKey == 0 {
		if KeyOnly(e) {
			return nil
		}
		return decide(t.s.root, 0)
	}
	x := e.DataKey
	if cur, ok := t.get(x); ok {
		if e.Parent != cur.parent {
			return refuse(RuleParentChanged, cur.parent)
		}
		auth, src, r := t.resolve(x)
		if r != 0 {
			return refuse(r, src)
		}
		return decide(auth, src)
	}
	if e.Tombstone {
		return refuse(RuleNoObject, x)
	}
	if e.Parent == 0 {
		return decide(t.s.root, 0)
	}
	p := e.Parent
	if _, ok := t.get(p); !ok {
		return refuse(RuleParentMissing, p)
	}
	// Walk every existing ancestor of the new object: none may name x as
	// its parent (a cycle), and there must be fewer than maxDepth.
	// n is the d-th ancestor.
	for n, d := p, 1; ; d++ {
		o, ok := t.get(n)
		if !ok {
			break // an orphan: its missing parent is not x, nor an ancestor
		}
		if d >= t.s.maxDepth {
			return refuse(RuleTooDeep, p)
		}
		if o.parent == 0 {
			break
		}
		if o.parent == x {
			return refuse(RuleCycle, n)
		}
		n = o.parent
	}
	auth, src, r := t.resolve(p)
	if r != 0 {
		return refuse(r, src)
	}
	return decide(auth, src)
}

// resolve returns the effective authorisation of the existing object x and
// the object it comes from (0: the root set), or a rule and the object it
// concerns when it cannot be decided.
func (t *Tx) resolve(x uint64) (auth proto.WriteAuth, src uint64, r Rule) {
	n := x
	for steps := 0; ; steps++ {
		if steps == t.s.maxDepth {
			return auth, x, RuleTooDeep
		}
		o, ok := t.get(n)
		if !ok {
			return auth, n, RuleParentMissing
		}
		if o.auth.Mode != proto.AuthInherit {
			return o.auth, n, 0
		}
		if o.parent == 0 {
			return t.s.root, 0, 0
		}
		n = o.parent
	}
}

// Apply checks e ([Tx.Check]) and, if it may be written, records its
// effect in t: a tombstone removes the object and its rights; any other
// event with a data key makes the event's write authorisation and parent
// the object's; public keys the event carries are registered, except keys
// [NewPublicKey] would refuse (an Ed25519 key of small order), which stay
// unknown. It returns
// the refusal, and records nothing, otherwise.
func (t *Tx) Apply(e *proto.Event, keys []proto.Hash) error {
	if t.done {
		panic("trust: Tx used after Commit or Abort")
	}
	if err := t.Check(e, keys); err != nil {
		return err
	}
	t.record(e)
	return nil
}

// record applies e's effect to the overlay, copying what it keeps.
func (t *Tx) record(e *proto.Event) {
	for _, k := range e.PublicKeys {
		h := k.Hash()
		if _, ok := t.keys[h]; ok {
			continue
		}
		if _, ok := t.s.keys[h]; ok {
			continue
		}
		if !usableKey(k) {
			continue // signatures by it stay unverifiable, as by an unregistered key
		}
		t.keys[h] = &regKey{pk: proto.PublicKey{Type: k.Type, Key: append([]byte(nil), k.Key...)}}
	}
	if e.DataKey == 0 {
		return
	}
	if e.Tombstone {
		t.objects[e.DataKey] = nil
		return
	}
	o := &object{parent: e.Parent, auth: proto.WriteAuth{Mode: e.WriteAuth.Mode}}
	if e.WriteAuth.Mode == proto.AuthAnyOf {
		o.auth.Keys = append(proto.HashList(nil), e.WriteAuth.Keys...)
	}
	t.objects[e.DataKey] = o
}

// Commit makes what t recorded part of the state and closes t.
func (t *Tx) Commit() {
	if t.done {
		panic("trust: Tx used after Commit or Abort")
	}
	for k, o := range t.objects {
		if o == nil {
			delete(t.s.objects, k)
		} else {
			t.s.objects[k] = *o
		}
	}
	for h, r := range t.keys {
		t.s.keys[h] = r
	}
	t.close()
}

// Abort drops what t recorded and closes t. Aborting a closed Tx does
// nothing, so `defer tx.Abort()` is safe after a Commit.
func (t *Tx) Abort() {
	if !t.done {
		t.close()
	}
}

func (t *Tx) close() {
	t.done = true
	t.s.txOpen = false
	t.objects, t.keys = nil, nil
}
