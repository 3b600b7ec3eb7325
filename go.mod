module github.com/atedb/atedb

go 1.26.0

require (
	github.com/cloudflare/circl v1.6.5 // indirect
	github.com/edsrzf/mmap-go v1.2.0 // indirect
	github.com/peterbourgon/ff/v3 v3.4.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
