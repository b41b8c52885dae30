package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/mephstore/mephstore/publish"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// defaultMemLimit is the Go runtime's soft memory limit unless GOMEMLIMIT
// says otherwise: the collector then works harder instead of letting the
// heap grow to twice what is live (an insert holds a source products file
// of 120 MB at 400k items: 267 MiB peak without the limit).
const defaultMemLimit = 160 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv: os.Getenv, euid: os.Geteuid(), stderrIsTerminal: isTerminal(os.Stderr),
	})
	stop()
	os.Exit(code)
}

// env is everything the command takes from its process, so tests can run
// it in-process.
type env struct {
	stdin            io.Reader
	stdout, stderr   io.Writer
	getenv           func(string) string
	euid             int
	stderrIsTerminal bool
}

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // the operation failed or found problems
	exitUsage    = 2 // bad flags or arguments
	exitSignaled = 130
)

// usageError marks errors in the command line itself.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// usageIf marks err as a usage error when it wraps ErrUsage (a package's
// way of saying the command line lacks something).
func usageIf(err error) error {
	if errors.Is(err, publish.ErrMissingChoice) {
		return usageError{err}
	}
	return err
}

// silentError carries an exit code for a failure already reported.
type silentError struct{ code int }

func (s silentError) Error() string { return fmt.Sprintf("exit %d", s.code) }

func run(ctx context.Context, args []string, e env) int {
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var se silentError
	if errors.As(err, &se) {
		return se.code
	}
	fmt.Fprintln(e.stderr, "mephstore: "+oneLine(err.Error()))
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return exitSignaled
	default:
		return exitFailure
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
