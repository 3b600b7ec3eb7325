module github.com/atedb/atedb

go 1.26.0

require (
	github.com/cloudflare/circl v1.6.5
	github.com/edsrzf/mmap-go v1.2.0
	github.com/peterbourgon/ff/v3 v3.4.0
	golang.org/x/sys v0.50.0
)
