package trust

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/atedb/atedb/proto"
)

// Key hashes for the authority tests (no real keys are needed: authority is
// about hashes; signatures are checked before it).
var (
	kR = keyHash("root")
	kA = keyHash("alice")
	kB = keyHash("bob")
	kC = keyHash("carol")
)

func keyHash(name string) proto.Hash {
	return proto.PublicKey{Type: proto.KeyEd25519, Key: []byte(fmt.Sprintf("%-32s", name))}.Hash()
}

func anyOf(keys ...proto.Hash) proto.WriteAuth {
	return proto.WriteAuth{Mode: proto.AuthAnyOf, Keys: proto.SortHashes(proto.MakeHashList(keys...))}
}

var (
	inherit  = proto.WriteAuth{}
	everyone = proto.WriteAuth{Mode: proto.AuthEveryone}
	nobody   = proto.WriteAuth{Mode: proto.AuthNobody}
)

// put is a data event for object key under parent with auth.
func put(key, parent uint64, auth proto.WriteAuth) proto.Event {
	return proto.Event{DataKey: key, Parent: parent, WriteAuth: auth, Data: []byte("v")}
}

// del is a tombstone for object key under parent.
func del(key, parent uint64) proto.Event {
	return proto.Event{DataKey: key, Parent: parent, Tombstone: true}
}

func keys(ks ...proto.Hash) []proto.Hash { return ks }

// TestAuthorityRules: one case per rule and per way of passing it. history
// is applied unchecked (it was accepted earlier); then ev is checked with
// the keys presented.
func TestAuthorityRules(t *testing.T) {
	keyOnly := proto.Event{PublicKeys: []proto.PublicKey{{Type: proto.KeyEd25519, Key: make([]byte, 32)}}}
	sigOnly := proto.Event{Signatures: []proto.Signature{{KeyHash: kA, Hashes: make(proto.HashList, 32), Signature: []byte{1}}}}
	chain := func(n int) []proto.Event { // objects 1..n, each the child of the previous
		var h []proto.Event
		for i := 1; i <= n; i++ {
			h = append(h, put(uint64(i), uint64(i-1), inherit))
		}
		return h
	}
	cases := []struct {
		name    string
		root    []proto.Hash
		history []proto.Event
		ev      proto.Event
		keys    []proto.Hash
		rule    Rule   // 0: allowed
		source  uint64 // RefusalError.Source when refused
	}{
		// Root write set.
		{name: "no root keys: anyone creates a top-level object", ev: put(1, 0, inherit)},
		{name: "no root keys: unsigned too", ev: put(1, 0, anyOf(kA)), keys: nil},
		{name: "root key creates a top-level object", root: keys(kR), ev: put(1, 0, inherit), keys: keys(kR)},
		{name: "one of several presented keys is a root key", root: keys(kR, kC), ev: put(1, 0, inherit), keys: keys(kA, kC)},
		{name: "other key may not create a top-level object", root: keys(kR), ev: put(1, 0, inherit), keys: keys(kA), rule: RuleRoot},
		{name: "unsigned may not create a top-level object", root: keys(kR), ev: put(1, 0, everyone), rule: RuleRoot},
		{name: "inherit at top level: root keys decide", root: keys(kR), history: []proto.Event{put(1, 0, inherit)}, ev: put(1, 0, inherit), keys: keys(kR)},
		{name: "inherit at top level: others refused", root: keys(kR), history: []proto.Event{put(1, 0, inherit)}, ev: put(1, 0, inherit), keys: keys(kA), rule: RuleRoot},
		{name: "event without data key: root decides", root: keys(kR), ev: proto.Event{Data: []byte("x")}, keys: keys(kA), rule: RuleRoot},
		{name: "event without data key: root key passes", root: keys(kR), ev: proto.Event{Data: []byte("x")}, keys: keys(kR)},
		{name: "empty event: root decides", root: keys(kR), ev: proto.Event{}, rule: RuleRoot},
		{name: "key registration needs nothing", root: keys(kR), ev: keyOnly},
		{name: "signature event needs nothing", root: keys(kR), ev: sigOnly},
		{name: "key registration with data: root decides", root: keys(kR), ev: proto.Event{PublicKeys: keyOnly.PublicKeys, Author: []byte("x")}, rule: RuleRoot},

		// An object's stored authorisation.
		{name: "any-of: listed key changes", root: keys(kR), history: []proto.Event{put(1, 0, anyOf(kA, kB))}, ev: put(1, 0, inherit), keys: keys(kB)},
		{name: "any-of: listed key deletes", root: keys(kR), history: []proto.Event{put(1, 0, anyOf(kA))}, ev: del(1, 0), keys: keys(kA)},
		{name: "any-of: other key refused", history: []proto.Event{put(1, 0, anyOf(kA))}, ev: put(1, 0, everyone), keys: keys(kB), rule: RuleObject, source: 1},
		{name: "any-of: root key does not override", root: keys(kR), history: []proto.Event{put(1, 0, anyOf(kA))}, ev: put(1, 0, inherit), keys: keys(kR), rule: RuleObject, source: 1},
		{name: "any-of: unsigned refused", history: []proto.Event{put(1, 0, anyOf(kA))}, ev: del(1, 0), rule: RuleObject, source: 1},
		{name: "event's own authorisation does not decide", history: []proto.Event{put(1, 0, anyOf(kA))}, ev: put(1, 0, anyOf(kB)), keys: keys(kB), rule: RuleObject, source: 1},
		{name: "everyone: unsigned changes", root: keys(kR), history: []proto.Event{put(1, 0, everyone)}, ev: put(1, 0, nobody)},
		{name: "everyone: unsigned deletes", root: keys(kR), history: []proto.Event{put(1, 0, everyone)}, ev: del(1, 0)},
		{name: "nobody: own writer refused", history: []proto.Event{put(1, 0, nobody)}, ev: put(1, 0, everyone), keys: keys(kA), rule: RuleNobody, source: 1},
		{name: "nobody: root key refused", root: keys(kR), history: []proto.Event{put(1, 0, nobody)}, ev: put(1, 0, inherit), keys: keys(kR), rule: RuleNobody, source: 1},
		{name: "nobody: tombstone refused", history: []proto.Event{put(1, 0, nobody)}, ev: del(1, 0), rule: RuleNobody, source: 1},
		{name: "nobody: no children", history: []proto.Event{put(1, 0, nobody)}, ev: put(2, 1, anyOf(kA)), keys: keys(kA), rule: RuleNobody, source: 1},
		{name: "nobody: inherited by existing child", history: []proto.Event{put(1, 0, everyone), put(2, 1, inherit), put(1, 0, nobody)}, ev: put(2, 1, inherit), rule: RuleNobody, source: 1},

		// Inheritance.
		{name: "child inherits parent's keys", history: []proto.Event{put(1, 0, anyOf(kA)), put(2, 1, inherit)}, ev: put(2, 1, inherit), keys: keys(kA)},
		{name: "child inherits parent's refusal", history: []proto.Event{put(1, 0, anyOf(kA)), put(2, 1, inherit)}, ev: del(2, 1), keys: keys(kB), rule: RuleObject, source: 1},
		{name: "grandchild inherits from grandparent", history: []proto.Event{put(1, 0, anyOf(kA)), put(2, 1, inherit), put(3, 2, inherit)}, ev: put(3, 2, inherit), keys: keys(kB), rule: RuleObject, source: 1},
		{name: "child's own authorisation wins", history: []proto.Event{put(1, 0, anyOf(kA)), put(2, 1, anyOf(kB))}, ev: put(2, 1, inherit), keys: keys(kB)},
		{name: "child's own authorisation excludes parent's keys", history: []proto.Event{put(1, 0, anyOf(kA)), put(2, 1, anyOf(kB))}, ev: put(2, 1, inherit), keys: keys(kA), rule: RuleObject, source: 2},
		{name: "inherit chain ends at root", root: keys(kR), history: []proto.Event{put(1, 0, inherit), put(2, 1, inherit)}, ev: put(2, 1, inherit), keys: keys(kA), rule: RuleRoot},
		{name: "creating a child needs the parent's rights", history: []proto.Event{put(1, 0, anyOf(kA))}, ev: put(2, 1, everyone), keys: keys(kB), rule: RuleObject, source: 1},
		{name: "creating a child with the parent's rights", history: []proto.Event{put(1, 0, anyOf(kA))}, ev: put(2, 1, everyone), keys: keys(kA)},

		// Parents.
		{name: "parent must exist", ev: put(2, 1, inherit), rule: RuleParentMissing, source: 1},
		{name: "self as parent", ev: put(2, 2, inherit), rule: RuleParentMissing, source: 2},
		{name: "orphan inheriting from a deleted parent", history: []proto.Event{put(1, 0, everyone), put(2, 1, inherit), del(1, 0)}, ev: put(2, 1, inherit), rule: RuleParentMissing, source: 1},
		{name: "orphan with its own authorisation", history: []proto.Event{put(1, 0, everyone), put(2, 1, anyOf(kA)), del(1, 0)}, ev: put(2, 1, inherit), keys: keys(kA)},
		{name: "parent is fixed", history: []proto.Event{put(1, 0, everyone), put(3, 0, everyone), put(2, 1, everyone)}, ev: put(2, 3, everyone), rule: RuleParentChanged, source: 1},
		{name: "parent cannot be dropped", history: []proto.Event{put(1, 0, everyone), put(2, 1, everyone)}, ev: put(2, 0, everyone), rule: RuleParentChanged, source: 1},
		{name: "tombstone names the parent too", history: []proto.Event{put(1, 0, everyone), put(2, 1, everyone)}, ev: del(2, 0), rule: RuleParentChanged, source: 1},
		{name: "cycle through an orphan", history: []proto.Event{put(1, 0, everyone), put(2, 1, everyone), del(1, 0)}, ev: put(1, 2, everyone), rule: RuleCycle, source: 2},
		{name: "cycle through an orphan's ancestors", history: []proto.Event{put(1, 0, everyone), put(2, 1, anyOf(kA)), put(3, 2, inherit), del(1, 0)}, ev: put(1, 3, everyone), keys: keys(kA), rule: RuleCycle, source: 2},
		{name: "recreated parent adopts its orphans", history: []proto.Event{put(1, 0, anyOf(kA)), put(2, 1, inherit), del(1, 0), put(1, 0, anyOf(kB))}, ev: put(2, 1, inherit), keys: keys(kB)},

		// Tombstones.
		{name: "tombstone for a missing object", ev: del(1, 0), rule: RuleNoObject, source: 1},
		{name: "tombstone for a deleted object", history: []proto.Event{put(1, 0, everyone), del(1, 0)}, ev: del(1, 0), rule: RuleNoObject, source: 1},
		{name: "tombstone removes the rights", root: keys(kR), history: []proto.Event{put(1, 0, anyOf(kA)), del(1, 0)}, ev: put(1, 0, inherit), keys: keys(kR)},
		{name: "tombstone removes the rights of the old owner", root: keys(kR), history: []proto.Event{put(1, 0, anyOf(kA)), del(1, 0)}, ev: put(1, 0, inherit), keys: keys(kA), rule: RuleRoot},
		{name: "nobody is lifted by nothing but a tombstone before it", history: []proto.Event{put(1, 0, everyone), put(1, 0, nobody), del(1, 0)}, ev: put(1, 0, everyone)},

		// Depth.
		{name: "deepest object allowed", history: chain(MaxDepth - 1), ev: put(MaxDepth, MaxDepth-1, inherit)},
		{name: "one level deeper refused", history: chain(MaxDepth), ev: put(MaxDepth+1, MaxDepth, inherit), rule: RuleTooDeep, source: MaxDepth},
		{name: "deepest object writable", history: chain(MaxDepth), ev: put(MaxDepth, MaxDepth-1, inherit)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState(tc.root)
			for i := range tc.history {
				s.Apply(&tc.history[i])
			}
			tx := s.Begin()
			defer tx.Abort()
			err := tx.Check(&tc.ev, tc.keys)
			if tc.rule == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *RefusalError
			if !errors.As(err, &re) || !errors.Is(err, ErrRefused) {
				t.Fatalf("error %v, want a refusal by rule %v", err, tc.rule)
			}
			if re.Rule != tc.rule || re.Source != tc.source || re.Object != tc.ev.DataKey {
				t.Fatalf("refused by rule %v, source %d, object %d; want rule %v, source %d, object %d (%v)", re.Rule, re.Source, re.Object, tc.rule, tc.source, tc.ev.DataKey, err)
			}
			if len(tc.keys) > 0 && (re.KeyHash != tc.keys[0] || re.Keys != len(tc.keys)) {
				t.Fatalf("refusal names key %x (%d keys), want %x (%d)", re.KeyHash, re.Keys, tc.keys[0], len(tc.keys))
			}
			if len(tc.keys) > 0 && !strings.Contains(err.Error(), FormatKeyHash(tc.keys[0])) && (tc.rule == RuleRoot || tc.rule == RuleObject) {
				t.Fatalf("message %q does not name the key", err)
			}
			if !strings.HasPrefix(err.Error(), "trust: ") || !strings.Contains(err.Error(), tc.rule.String()) {
				t.Fatalf("message %q", err)
			}
		})
	}
}

// TestTxAtomic: events of one batch see each other; an aborted batch
// leaves nothing; a committed one stays.
func TestTxAtomic(t *testing.T) {
	s := NewState(keys(kR))
	before := string(s.AppendBinary(nil, 0))
	tx := s.Begin()
	pk := testKey(t, proto.KeyEd25519, "registered").Public()
	for i, e := range []proto.Event{
		{PublicKeys: []proto.PublicKey{pk.Proto()}},
		put(1, 0, anyOf(kA)), // root key creates
		put(2, 1, inherit),   // in the same batch, under the new parent
		del(2, 1),
		put(2, 1, nobody),
	} {
		k := keys(kR)
		if i > 1 {
			k = keys(kA)
		}
		if err := tx.Apply(&e, k); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if _, ok := tx.PublicKey(pk.Hash()); !ok {
		t.Fatalf("key registered in the batch not visible in it")
	}
	bad := put(2, 1, everyone)
	if err := tx.Apply(&bad, keys(kA)); !errors.Is(err, ErrRefused) {
		t.Fatalf("frozen object changed in the same batch: %v", err)
	}
	tx.Abort()
	tx.Abort() // idempotent
	if after := string(s.AppendBinary(nil, 0)); after != before {
		t.Fatalf("aborted batch changed the state")
	}
	if _, ok := s.PublicKey(pk.Hash()); ok {
		t.Fatalf("aborted batch registered a key")
	}

	tx = s.Begin()
	for _, e := range []proto.Event{{PublicKeys: []proto.PublicKey{pk.Proto()}}, put(1, 0, anyOf(kA)), put(2, 1, nobody)} {
		if err := tx.Apply(&e, keys(kR, kA)); err != nil {
			t.Fatal(err)
		}
	}
	tx.Commit()
	tx.Abort() // after Commit: nothing
	if a, p, ok := s.Auth(2); !ok || p != 1 || a.Mode != proto.AuthNobody {
		t.Fatalf("Auth(2) = %v, %d, %v", a, p, ok)
	}
	if got, ok := s.PublicKey(pk.Hash()); !ok || !got.Equal(pk) {
		t.Fatalf("PublicKey after commit = %v, %v", got, ok)
	}
	if s.Objects() != 2 {
		t.Fatalf("Objects() = %d, want 2", s.Objects())
	}
	if got := s.RootKeys(); len(got) != 1 || got[0] != kR {
		t.Fatalf("RootKeys() = %x", got)
	}
}

// TestTxCopiesEvents: the state keeps no reference into an applied event's
// buffers.
func TestTxCopiesEvents(t *testing.T) {
	s := NewState(nil)
	e := put(1, 0, anyOf(kA))
	s.Apply(&e)
	e.WriteAuth.Keys[0] ^= 0xff
	tx := s.Begin()
	defer tx.Abort()
	if err := tx.Check(&e, keys(kA)); err != nil {
		t.Fatalf("state changed with the event's buffer: %v", err)
	}
}

func TestMisusePanics(t *testing.T) {
	for name, f := range map[string]func(s *State){
		"Begin twice":          func(s *State) { s.Begin(); s.Begin() },
		"Apply during Tx":      func(s *State) { s.Begin(); e := put(1, 0, inherit); s.Apply(&e) },
		"AppendBinary during":  func(s *State) { s.Begin(); s.AppendBinary(nil, 0) },
		"Tx used after Commit": func(s *State) { tx := s.Begin(); tx.Commit(); e := put(1, 0, inherit); _ = tx.Apply(&e, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("no panic")
				}
			}()
			f(NewState(nil))
		})
	}
}

// TestWeakKeyNotRegistered: an event may carry an Ed25519 key of small
// order, but it is not registered, so nothing can be verified with it.
func TestWeakKeyNotRegistered(t *testing.T) {
	s := NewState(nil)
	weak := proto.PublicKey{Type: proto.KeyEd25519, Key: bytes.Clone(smallOrder[2][:])}
	good := testKey(t, proto.KeyEd25519, "good").Public().Proto()
	e := proto.Event{PublicKeys: []proto.PublicKey{weak, good}}
	tx := s.Begin()
	if err := tx.Apply(&e, nil); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	if _, ok := s.PublicKey(weak.Hash()); ok {
		t.Fatalf("weak key registered")
	}
	if _, ok := s.PublicKey(good.Hash()); !ok {
		t.Fatalf("good key not registered")
	}
	if _, _, err := DecodeState(s.AppendBinary(nil, 0)); err != nil {
		t.Fatal(err)
	}
}
