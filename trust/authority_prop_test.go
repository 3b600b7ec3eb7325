package trust

import (
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/atedb/atedb/proto"
)

// refModel is the reference model of the tree-authority rules: a map of
// live objects, recursive definitions straight from docs/TRUST.md §2, and
// atomic batches by copying the whole map. It shares no code with State
// but the KeyOnly predicate (tested on its own in TestAuthorityRules).
type refModel struct {
	root     []proto.Hash // empty: everyone
	objs     map[uint64]refObj
	maxDepth int
}

type refObj struct {
	mode   proto.AuthMode
	keys   []proto.Hash
	parent uint64
}

type refDecision struct {
	rule   Rule
	source uint64
}

func hasAny(set, presented []proto.Hash) bool {
	for _, a := range set {
		for _, b := range presented {
			if a == b {
				return true
			}
		}
	}
	return false
}

// allowedBy decides for an authorisation coming from src (0: root).
func (m *refModel) allowedBy(mode proto.AuthMode, set []proto.Hash, src uint64, presented []proto.Hash) refDecision {
	switch {
	case mode == proto.AuthEveryone:
		return refDecision{}
	case mode == proto.AuthNobody:
		return refDecision{RuleNobody, src}
	case hasAny(set, presented):
		return refDecision{}
	case src == 0:
		return refDecision{RuleRoot, 0}
	}
	return refDecision{RuleObject, src}
}

func (m *refModel) byRoot(presented []proto.Hash) refDecision {
	if len(m.root) == 0 {
		return refDecision{}
	}
	return m.allowedBy(proto.AuthAnyOf, m.root, 0, presented)
}

// effective decides by the effective authorisation of the existing object
// x: its own, else its parent's, recursively, else the root set. It may
// look at no more than maxDepth objects.
func (m *refModel) effective(x, n uint64, looked int, presented []proto.Hash) refDecision {
	if looked == m.maxDepth {
		return refDecision{RuleTooDeep, x}
	}
	o, ok := m.objs[n]
	if !ok {
		return refDecision{RuleParentMissing, n}
	}
	if o.mode != proto.AuthInherit {
		return m.allowedBy(o.mode, o.keys, n, presented)
	}
	if o.parent == 0 {
		return m.byRoot(presented)
	}
	return m.effective(x, o.parent, looked+1, presented)
}

// ancestors lists the existing ancestors of a new object whose parent is p.
func (m *refModel) ancestors(p uint64) []uint64 {
	var out []uint64
	for n := p; n != 0 && len(out) <= len(m.objs); n = m.objs[n].parent {
		if _, ok := m.objs[n]; !ok {
			break
		}
		out = append(out, n)
	}
	return out
}

func (m *refModel) decide(e *proto.Event, presented []proto.Hash) refDecision {
	if e.DataKey == 0 {
		if KeyOnly(e) {
			return refDecision{}
		}
		return m.byRoot(presented)
	}
	x := e.DataKey
	if o, ok := m.objs[x]; ok {
		if o.parent != e.Parent {
			return refDecision{RuleParentChanged, o.parent}
		}
		return m.effective(x, x, 0, presented)
	}
	if e.Tombstone {
		return refDecision{RuleNoObject, x}
	}
	if e.Parent == 0 {
		return m.byRoot(presented)
	}
	if _, ok := m.objs[e.Parent]; !ok {
		return refDecision{RuleParentMissing, e.Parent}
	}
	for i, a := range m.ancestors(e.Parent) {
		if i+1 >= m.maxDepth {
			return refDecision{RuleTooDeep, e.Parent}
		}
		if m.objs[a].parent == x {
			return refDecision{RuleCycle, a}
		}
	}
	return m.effective(e.Parent, e.Parent, 0, presented)
}

func (m *refModel) apply(e *proto.Event) {
	switch {
	case e.DataKey == 0:
	case e.Tombstone:
		delete(m.objs, e.DataKey)
	default:
		o := refObj{mode: e.WriteAuth.Mode, parent: e.Parent}
		for i := range e.WriteAuth.Keys.Len() {
			o.keys = append(o.keys, e.WriteAuth.Keys.At(i))
		}
		m.objs[e.DataKey] = o
	}
}

// opGen makes random events over a small universe so that every rule is
// hit often.
type opGen struct {
	r    *rand.Rand
	keys []proto.Hash // kR, kA, kB, kC
}

func (g *opGen) keySet(max int) []proto.Hash {
	var out []proto.Hash
	for _, k := range g.keys[:max] {
		if g.r.IntN(3) == 0 {
			out = append(out, k)
		}
	}
	return out
}

func (g *opGen) event() proto.Event {
	r := g.r
	switch r.IntN(20) {
	case 0:
		return proto.Event{PublicKeys: []proto.PublicKey{{Type: proto.KeyEd25519, Key: make([]byte, 32)}}}
	case 1:
		return proto.Event{Data: []byte("no key")}
	}
	e := proto.Event{DataKey: uint64(1 + r.IntN(7))}
	if r.IntN(3) > 0 {
		e.Parent = uint64(1 + r.IntN(7))
	}
	if r.IntN(5) == 0 {
		e.Tombstone = true
		return e
	}
	e.Data = []byte("v")
	switch r.IntN(6) {
	case 0:
		e.WriteAuth.Mode = proto.AuthEveryone
	case 1:
		e.WriteAuth.Mode = proto.AuthNobody
	case 2, 3:
		if ks := g.keySet(4); len(ks) > 0 {
			e.WriteAuth = anyOf(ks...)
		}
	}
	return e
}

// TestAuthorityMatchesModel runs random batches against State (through
// Tx, with random commits, aborts and checkpoint round trips) and the
// reference model, and compares every decision.
func TestAuthorityMatchesModel(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	ruleSeen := map[Rule]int{}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 0x7275737400))
		g := &opGen{r: r, keys: []proto.Hash{kR, kA, kB, kC}}
		var root []proto.Hash
		switch r.IntN(3) {
		case 1:
			root = []proto.Hash{kR}
		case 2:
			root = []proto.Hash{kR, kA}
		}
		depth := 2 + r.IntN(4)
		s := NewState(root)
		s.maxDepth = depth
		m := &refModel{root: root, objs: map[uint64]refObj{}, maxDepth: depth}
		for step := 0; step < 200; step++ {
			if r.IntN(25) == 0 { // checkpoint and continue from the decoded state
				back, pos, err := DecodeState(s.AppendBinary(nil, uint64(step)))
				if err != nil || pos != uint64(step) {
					t.Fatalf("seed %d step %d: checkpoint: %v, position %d", seed, step, err, pos)
				}
				back.maxDepth = depth
				s = back
			}
			tx := s.Begin()
			work := &refModel{root: m.root, objs: maps.Clone(m.objs), maxDepth: depth}
			refused := false
			for range 1 + r.IntN(4) {
				e := g.event()
				presented := g.keySet(4)
				want := work.decide(&e, presented)
				err := tx.Apply(&e, presented)
				var got refDecision
				if err != nil {
					re, ok := err.(*RefusalError)
					if !ok {
						t.Fatalf("seed %d step %d: error %v is not a *RefusalError", seed, step, err)
					}
					got = refDecision{re.Rule, re.Source}
				}
				if got != want {
					t.Fatalf("seed %d step %d: event %+v keys %d: state says %v/%d, model says %v/%d (%v)",
						seed, step, e, len(presented), got.rule, got.source, want.rule, want.source, err)
				}
				ruleSeen[want.rule]++
				if want.rule != 0 {
					refused = true
					break
				}
				work.apply(&e)
			}
			if refused || r.IntN(4) == 0 {
				tx.Abort()
				continue
			}
			tx.Commit()
			m = work
		}
		// The final states agree object by object.
		if s.Objects() != len(m.objs) {
			t.Fatalf("seed %d: %d objects, model has %d", seed, s.Objects(), len(m.objs))
		}
		for k, o := range m.objs {
			a, p, ok := s.Auth(k)
			if !ok || p != o.parent || a.Mode != o.mode || a.Keys.Len() != len(o.keys) {
				t.Fatalf("seed %d: object %d = %v %d %v, model %+v", seed, k, a, p, ok, o)
			}
		}
	}
	for r := RuleRoot; r <= RuleTooDeep; r++ {
		if ruleSeen[r] == 0 {
			t.Errorf("rule %v never decided a random event: the generator misses it", r)
		}
	}
	t.Logf("decisions: %v", ruleSeen)
}
