package mmaplog_test

import (
	"fmt"
	"log"
	"os"

	"github.com/atedb/atedb/mmaplog"
)

func Example() {
	dir, err := os.MkdirTemp("", "mmaplog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	l, err := mmaplog.Open(dir, mmaplog.Options{})
	if err != nil {
		log.Fatal(err)
	}
	first, err := l.Append([][]byte{[]byte("first event"), []byte("second event")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended at", first, "head", l.Head())

	c, err := l.NewCursor(0)
	if err != nil {
		log.Fatal(err)
	}
	recs, err := c.Next(make([]mmaplog.Record, 0, 16), 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Printf("%d: %s\n", r.Offset, r.Payload) // r.Payload is valid until the next Next
	}
	c.Close()
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// appended at 0 head 2
	// 0: first event
	// 1: second event
}
