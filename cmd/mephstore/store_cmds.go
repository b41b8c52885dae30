package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/progress"
	"github.com/mephstore/mephstore/s3store"
)

func (a *app) initCmd() *cobra.Command {
	var (
		reserveMiB int64
		endpoint   string
		create     bool
	)
	cmd := &cobra.Command{
		Use:   "init [s3://bucket/prefix]",
		Short: "Create a new, empty store (on this machine, or on an S3-compatible bucket)",
		Long: `Create a new, empty store. It holds a reserve: a file of real blocks
(--reserve MiB) that gc deletes when the disk is full, to have room for its
own records while it frees space, and makes again when it is done.

With s3://bucket/prefix (or --store s3://...), the store lives on a bucket
that several machines share: its pool, its records and its locks (see
docs/s3.md). Credentials come from the standard AWS environment variables
or shared files; the endpoint from --endpoint, ?endpoint=URL or
$AWS_ENDPOINT_URL. --create-bucket makes a bucket that does not exist.`,
		Example: `  mephstore --store /srv/mephstore init
  mephstore init s3://images/mephstore --endpoint http://s3.example.com:7070 --create-bucket`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reserveMiB < 0 {
				return usageError{fmt.Errorf("--reserve %d: must be 0 or more", reserveMiB)}
			}
			dir := a.storeDir()
			if len(args) == 1 {
				dir = args[0]
			}
			if s3store.IsURL(dir) {
				return a.initS3(cmd, dir, endpoint, create)
			}
			if endpoint != "" || create {
				return usageError{fmt.Errorf("--endpoint and --create-bucket are for a store on a bucket (s3://bucket/prefix), not %s", dir)}
			}
			if err := cas.InitWith(dir, reserveMiB<<20); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "initialised store %s\n", dir)
			return nil
		},
	}
	cmd.Flags().Int64Var(&reserveMiB, "reserve", cas.DefaultReserve>>20, "MiB of disk kept in reserve for gc on a full disk (0: none)")
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "S3 endpoint of a store on a bucket (http://host:port or https://host)")
	cmd.Flags().BoolVar(&create, "create-bucket", false, "create the bucket of a store on S3 if it does not exist")
	return cmd
}

// initS3 makes a store on a bucket and says how to name it from now on.
func (a *app) initS3(cmd *cobra.Command, loc, endpoint string, create bool) error {
	cfg, err := s3store.ParseRoot(loc, endpoint)
	if err != nil {
		return usageError{err}
	}
	r, err := s3store.InitStore(ctxOf(cmd), cfg, create)
	if err != nil {
		return err
	}
	name := r.Bucket().URL()
	fmt.Fprintf(a.stdout, "initialised store %s\nuse it with --store '%s' or MEPHSTORE_STORE='%s'\n", r, name, name)
	return nil
}

func (a *app) ingestCmd() *cobra.Command {
	var (
		sum     string
		size    int64
		asJSON  bool
		example = `  mephstore ingest noble-server-cloudimg-amd64.squashfs
  mephstore ingest --sha256 5f1c...e2 --size 1048576 vmlinuz
  curl -s https://example.invalid/image.tar.xz | mephstore ingest -`
	)
	cmd := &cobra.Command{
		Use:     "ingest FILE...",
		Short:   "Add files to the blob pool (one line per file: sha256:<hex> <size> <name>)",
		Long:    "Ingest reads each file once, hashing while it writes, and adds it to the pool. Bytes already in the pool are not written again. FILE - reads standard input.",
		Example: example,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp := cas.Unknown
			if cmd.Flags().Changed("sha256") || cmd.Flags().Changed("size") {
				if len(args) != 1 {
					return usageError{fmt.Errorf("--sha256 and --size apply to one file, got %d", len(args))}
				}
				if cmd.Flags().Changed("sha256") {
					d, err := cas.ParseDigest(sum)
					if err != nil {
						return usageError{fmt.Errorf("--sha256: %w", err)}
					}
					exp.Digest = d
				}
				if cmd.Flags().Changed("size") {
					if size < 0 {
						return usageError{fmt.Errorf("--size %d: must not be negative", size)}
					}
					exp.Size = size
				}
			}
			s, err := a.openStore()
			if err != nil {
				return err
			}
			srcs := make([]cas.Source, len(args))
			for i, p := range args {
				if p == "-" {
					srcs[i] = cas.ReaderSource("-", a.stdin, exp)
				} else {
					srcs[i] = cas.FileSource(p, exp)
				}
			}
			var out []cas.Ingested
			err = s.IngestAll(ctxOf(cmd), srcs, a.meters(), func(in cas.Ingested) error {
				if asJSON {
					out = append(out, in)
					return nil
				}
				_, err := fmt.Fprintf(a.stdout, "%s %d %s\n", in.Digest, in.Size, in.Name)
				a.log.Debug("ingested", "name", in.Name, "digest", in.Digest, "new", in.New)
				return err
			})
			if asJSON && out != nil {
				if jerr := jsonOut(a.stdout, out); jerr != nil && err == nil {
					err = jerr
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&sum, "sha256", "", "expected sha256 of the one FILE; a mismatch aborts and leaves nothing behind")
	cmd.Flags().Int64Var(&size, "size", -1, "expected size in bytes of the one FILE")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {name, digest, size, ingested, new}")
	return cmd
}

func (a *app) catCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cat DIGEST",
		Short: "Write a blob to standard output (verifying its sha256 as it goes)",
		Example: `  mephstore cat sha256:5f1c0c...e2 > vmlinuz
  mephstore cat 5f1c0c | head -c 64    # a unique prefix of 6+ hex digits`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore()
			if err != nil {
				return err
			}
			d, err := s.Resolve(args[0])
			if err != nil {
				return err
			}
			r, err := s.OpenBlob(d)
			if err != nil {
				return err
			}
			defer r.Close()
			w := bufio.NewWriterSize(a.stdout, 1<<20)
			if _, err := io.Copy(w, r); err != nil {
				return err
			}
			return w.Flush()
		},
	}
}

func (a *app) blobsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "blobs",
		Short:   "List the blobs in the pool: sha256:<hex> <size>",
		Example: "  mephstore blobs\n  mephstore blobs --json | jq '.[].size' | paste -sd+ | bc",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore()
			if err != nil {
				return err
			}
			ss, err := s.Reader(ctxOf(cmd))
			if err != nil {
				return err
			}
			defer ss.Close()
			w := bufio.NewWriterSize(a.stdout, 1<<16)
			first := true
			if asJSON {
				w.WriteString("[")
			}
			err = ss.Blobs(func(b cas.Blob) error {
				if !asJSON {
					_, err := fmt.Fprintf(w, "%s %d\n", b.Digest, b.Size)
					return err
				}
				if !first {
					w.WriteString(",")
				}
				first = false
				enc, err := json.Marshal(b)
				if err != nil {
					return err
				}
				w.WriteString("\n  ")
				_, err = w.Write(enc)
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				if !first {
					w.WriteString("\n")
				}
				w.WriteString("]\n")
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {digest, size, ingested}")
	return cmd
}

func (a *app) fsckCmd() *cobra.Command {
	var (
		deep   bool
		jobs   int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check the store: records against pool files, stray files, and with --deep every sha256",
		Long: `fsck compares every blob record with its pool file (present, right size, read-only),
finds pool files without records and stray files, and with --deep re-hashes every
blob in parallel. It lists each problem on its own line and exits 1 if there is any.
It runs as a writer: it first finishes or undoes anything a crash interrupted.`,
		Example: "  mephstore fsck\n  mephstore fsck --deep -j 4\n  mephstore fsck --json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore()
			if err != nil {
				return err
			}
			start := time.Now()
			rep, err := s.Check(ctxOf(cmd), cas.CheckOptions{Deep: deep, Jobs: jobs, Meters: a.meters()})
			if err != nil {
				return err
			}
			if rep.Problems == nil {
				rep.Problems = []cas.Problem{}
			}
			if asJSON {
				if err := jsonOut(a.stdout, rep); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Problems {
					fmt.Fprintln(a.stdout, p.String())
				}
				what := "checked"
				if deep {
					what = "checked and re-hashed"
				}
				fmt.Fprintf(a.stdout, "fsck: %s %d blobs (%s) in %s: %s\n", what, rep.Blobs, progress.HumanBytes(rep.Bytes),
					time.Since(start).Round(time.Millisecond), plural(len(rep.Problems), "problem"))
			}
			if len(rep.Problems) > 0 {
				return silentError{exitFailure}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&deep, "deep", false, "also re-hash every blob")
	cmd.Flags().IntVarP(&jobs, "jobs", "j", 0, "parallel hashers for --deep (default: number of CPUs)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
