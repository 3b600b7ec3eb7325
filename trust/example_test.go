package trust_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
)

// A writer signs the hashes of a batch's events once; anyone holding the
// public key re-verifies it, for this chain only.
func Example() {
	seed := bytes.Repeat([]byte{1}, trust.SeedSize) // use trust.GenerateKey for real keys
	k, _ := trust.NewPrivateKey(proto.KeyEd25519, seed)

	e1 := proto.Event{DataKey: 1, Data: []byte("hello")}
	e2 := proto.Event{DataKey: 2, Data: []byte("world")}
	var hashes proto.HashList
	for _, e := range []proto.Event{e1, e2} {
		b, _ := e.AppendBinary(nil)
		h, _ := proto.EventHash(b)
		hashes = append(hashes, h[:]...)
	}
	sig, _ := k.SignBatch("app/db", hashes) // goes into a key-only event before e1 and e2

	fmt.Println(k.Public())
	fmt.Println(k.Public().VerifySignature("app/db", sig))
	fmt.Println(errors.Is(k.Public().VerifySignature("app/other", sig), trust.ErrBadSignature))
	// Output:
	// ed25519 sha256:d2dd6e81a001b70a13607f6fbbb3b129ff367216fc1f8e3ae53e63976bf573a2
	// <nil>
	// true
}

// A State decides who may write each event of a batch, inside a Tx.
func ExampleState() {
	var alice, bob proto.Hash
	alice[0], bob[0] = 'a', 'b'
	st := trust.NewState(nil) // no root keys: anyone creates top-level objects

	tx := st.Begin()
	doc := proto.Event{DataKey: 7, WriteAuth: proto.WriteAuth{Mode: proto.AuthAnyOf, Keys: proto.MakeHashList(alice)}}
	fmt.Println(tx.Apply(&doc, nil)) // creation: the root set (everyone) decides
	tx.Commit()

	tx = st.Begin()
	defer tx.Abort()
	edit := proto.Event{DataKey: 7, Data: []byte("v2")}
	fmt.Println(tx.Check(&edit, []proto.Hash{alice}))
	err := tx.Check(&edit, []proto.Hash{bob})
	var re *trust.RefusalError
	fmt.Println(errors.As(err, &re), re.Rule, re.Source)
	// Output:
	// <nil>
	// <nil>
	// true object 7
}
