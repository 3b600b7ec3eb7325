package proto

import (
	"bytes"
	"testing"
)

// TestHotPathAllocs proves the zero-allocation claims of the hot paths:
// decoding events and batches into reused structs, building Events bodies
// and Appends into a buffer with room, iterating, hashing.
func TestHotPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	evs := make([][]byte, 64)
	for i := range evs {
		evs[i] = mustEncodeEvent(t, dataEvent(uint64(i+1), 1024))
	}
	full := mustEncodeEvent(t, fullEvent())
	app := &Append{Channel: 1, CommitID: 2, HasCondition: true, ExpectedNext: 3, Events: evs}
	appBody, err := app.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	evBody := AppendEventsHeader(nil, 1)
	for i, e := range evs {
		evBody = AppendEventsItem(evBody, uint64(i+10), int64(i), e)
	}
	conf := &Confirmed{Channel: 1, CommitID: 2, Offsets: []uint64{1, 2, 3, 9, 4}}
	confBody, _ := conf.AppendBinary(nil)

	buf := make([]byte, 0, 1<<20)
	var e Event
	var a Append
	var m Events
	var c Confirmed
	_ = e.Decode(full) // size the reused slices
	_ = a.Decode(appBody)
	_ = c.Decode(confBody)

	checks := map[string]func(){
		"Event.Decode full": func() {
			if err := e.Decode(full); err != nil {
				t.Fatal(err)
			}
		},
		"Event.Decode data": func() { _ = e.Decode(evs[0]) },
		"Event.AppendBinary": func() {
			if _, err := e.AppendBinary(buf[:0]); err != nil {
				t.Fatal(err)
			}
		},
		"EventHash":        func() { _, _ = EventHash(evs[0]) },
		"EventDataKey":     func() { _, _, _ = EventDataKey(evs[0]) },
		"Append.Decode":    func() { _ = a.Decode(appBody) },
		"Append.AppendBin": func() { _, _ = app.AppendBinary(buf[:0]) },
		"Confirmed.Decode": func() { _ = c.Decode(confBody) },
		"Confirmed.Append": func() { _, _ = conf.AppendBinary(buf[:0]) },
		"Events.Decode+Iter": func() {
			_ = m.Decode(evBody)
			it := m.Iter()
			for {
				if _, ok := it.Next(); !ok {
					break
				}
			}
		},
		"Events build": func() {
			b := AppendEventsHeader(buf[:0], 1)
			for i, ev := range evs {
				b = AppendEventsItem(b, uint64(i), 0, ev)
			}
		},
		"PeekChannel": func() { _, _, _, _ = PeekChannel(appBody) },
	}
	for name, f := range checks {
		if got := testing.AllocsPerRun(50, f); got != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, got)
		}
	}
	if !bytes.Equal(a.Events[63], evs[63]) {
		t.Fatal("decoded Append lost an event")
	}
}
