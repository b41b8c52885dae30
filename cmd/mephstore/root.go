package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/progress"
	"github.com/mephstore/mephstore/s3store"
)

// app holds the global flags and the process environment for commands.
type app struct {
	env
	storeFlag string
	cacheFlag string
	wait      time.Duration
	verbose   int
	noProg    bool
	cpuprof   string
	stall     time.Duration
	retries   int
	log       *slog.Logger
	stopProf  func()
}

func newRoot(e env) *cobra.Command {
	a := &app{env: e}
	root := &cobra.Command{
		Use:   "mephstore",
		Short: "Build, store and publish MAAS boot images as signed simplestreams",
		Long: `mephstore keeps MAAS boot image artifacts once in a sha256-keyed pool and
publishes streams (daily, candidate, stable, ...) as signed simplestreams trees.

The store is chosen by --store, else $MEPHSTORE_STORE, else /var/lib/mephstore
for root and $XDG_DATA_HOME/mephstore (~/.local/share/mephstore) otherwise.
A store on an S3-compatible bucket is named s3://bucket/prefix (with
?endpoint=URL or $AWS_ENDPOINT_URL); this machine then keeps a cache of its
records in --cache (default /var/cache/mephstore/<name> for root,
$XDG_CACHE_HOME/mephstore/<name> otherwise).`,
		Version:           version,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelInfo
			switch {
			case a.verbose > 1:
				level = cas.LevelTrace // and badger's chatter
			case a.verbose > 0:
				level = slog.LevelDebug
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			if a.cpuprof != "" {
				f, err := os.Create(a.cpuprof)
				if err == nil && pprof.StartCPUProfile(f) == nil {
					a.stopProf = func() { pprof.StopCPUProfile(); f.Close() }
				}
			}
		},
		PersistentPostRun: func(cmd *cobra.Command, args []string) {
			if a.stopProf != nil {
				a.stopProf()
			}
		},
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetIn(e.stdin)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.storeFlag, "store", "", "store directory, or s3://bucket/prefix[?endpoint=URL] for a store on a bucket (default $MEPHSTORE_STORE, else /var/lib/mephstore or $XDG_DATA_HOME/mephstore)")
	pf.StringVar(&a.cacheFlag, "cache", "", "this machine's cache of a store on a bucket (default $MEPHSTORE_CACHE, else /var/cache/mephstore/<name> or $XDG_CACHE_HOME/mephstore/<name>)")
	pf.DurationVar(&a.wait, "wait", cas.DefaultWait, "how long to wait for a store locked by another writer")
	pf.CountVarP(&a.verbose, "verbose", "v", "log more detail (debug level; -vv adds the database's own)")
	pf.BoolVar(&a.noProg, "no-progress", false, "never draw progress meters (they are drawn only on a terminal anyway)")
	pf.DurationVar(&a.stall, "stall-timeout", fetch.DefaultStall, "give up on an HTTP server that sends nothing for this long (each attempt; downloads are retried and resumed)")
	pf.IntVar(&a.retries, "retries", 5, "attempts after the first for a failed or broken HTTP download")
	pf.StringVar(&a.cpuprof, "cpuprofile", "", "write a CPU profile to this file (for performance work)")
	pf.MarkHidden("cpuprofile")
	root.SetVersionTemplate("mephstore {{.Version}}\n")

	root.AddCommand(
		a.initCmd(),
		a.ingestCmd(),
		a.catCmd(),
		a.blobsCmd(),
		a.fsckCmd(),
		a.streamCmd(),
		a.insertCmd(),
		a.promoteCmd(),
		a.rollbackCmd(),
		a.cleanMDCmd(),
		a.removeCmd(),
		a.logCmd(),
		a.diffCmd(),
		a.queryCmd(),
		a.buildCmd(),
		a.buildsCmd(),
		a.publishCmd(),
		a.keyCmd(),
		a.serveCmd(),
		a.gcCmd(),
		a.leasesCmd(),
		a.findOrphansCmd(),
		a.reapOrphansCmd(),
		a.syncCmd(),
		a.verifyCmd(),
		a.devCmd(),
	)
	// Argument errors are usage errors (exit 2): the root refuses unknown
	// commands, and every validator's error is marked where it is made.
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	markUsage(root)
	return root
}

// markUsage wraps the argument validators of cmd and its subcommands so
// that their errors are usage errors.
func markUsage(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		if v := c.Args; v != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := v(cmd, args); err != nil {
					var ue usageError
					if errors.As(err, &ue) {
						return err
					}
					return usageError{err}
				}
				return nil
			}
		}
		markUsage(c)
	}
}

// fetchClient is the HTTP client of every download a command makes.
func (a *app) fetchClient() *fetch.Client {
	retries := a.retries
	if retries <= 0 {
		retries = -1 // none
	}
	return &fetch.Client{Stall: a.stall, Retries: retries, Log: a.log}
}

// storeDir resolves the store directory from the flag, the environment and
// the default.
func (a *app) storeDir() string {
	if a.storeFlag != "" {
		return a.storeFlag
	}
	if d := a.getenv("MEPHSTORE_STORE"); d != "" {
		return d
	}
	return cas.DefaultDir(a.getenv, a.euid)
}

func (a *app) openStore() (*cas.Store, error) {
	o := cas.Options{Wait: a.wait, Logger: a.log}
	if loc := a.storeDir(); s3store.IsURL(loc) {
		return build.OpenStoreAt(func() (*cas.Store, error) {
			return s3store.OpenCached(context.Background(), loc, a.cacheDir(loc), o)
		})
	}
	return build.OpenStore(a.storeDir(), o)
}

// cacheDir is where this machine caches the records of the store on a
// bucket at loc.
func (a *app) cacheDir(loc string) string {
	if a.cacheFlag != "" {
		return a.cacheFlag
	}
	if d := a.getenv("MEPHSTORE_CACHE"); d != "" {
		return d
	}
	return cas.DefaultCacheDir(a.getenv, a.euid, s3store.CacheName(loc))
}

// meters draws progress on stderr when it is a terminal.
func (a *app) meters() progress.Factory {
	if a.stderrIsTerminal && !a.noProg {
		return progress.Factory{W: a.stderr}
	}
	return progress.Factory{}
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// jsonOut writes v as indented JSON on w.
func jsonOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ctxOf returns the command's context.
func ctxOf(cmd *cobra.Command) context.Context { return cmd.Context() }

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0])}
	}
	return nil
}
