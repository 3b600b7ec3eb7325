package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// profiler runs the debugging profiles solo was asked for (--cpuprofile,
// --trace) from start-up to the end of the shutdown. It is not safe for
// concurrent use; the zero value with empty paths records nothing.
type profiler struct {
	cpuPath, tracePath string
	cpu, trace         *os.File
}

// start creates the files and starts recording. On error nothing is left
// running (files already created are closed and kept, empty).
func (p *profiler) start() error {
	if p.cpuPath != "" {
		f, err := os.Create(p.cpuPath)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		p.cpu = f
	}
	if p.tracePath != "" {
		f, err := os.Create(p.tracePath)
		if err != nil {
			p.stop()
			return fmt.Errorf("--trace: %w", err)
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			p.stop()
			return fmt.Errorf("--trace: %w", err)
		}
		p.trace = f
	}
	return nil
}

// stop ends the recordings and closes their files; it returns the first
// error writing them. Calling it again does nothing.
func (p *profiler) stop() error {
	var errs []error
	if p.cpu != nil {
		pprof.StopCPUProfile()
		if err := p.cpu.Close(); err != nil {
			errs = append(errs, fmt.Errorf("--cpuprofile: %w", err))
		}
		p.cpu = nil
	}
	if p.trace != nil {
		trace.Stop()
		if err := p.trace.Close(); err != nil {
			errs = append(errs, fmt.Errorf("--trace: %w", err))
		}
		p.trace = nil
	}
	return errors.Join(errs...)
}
