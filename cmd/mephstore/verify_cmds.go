package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/cloudgen"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/progress"
	"github.com/mephstore/mephstore/internal/streamgen"
	"github.com/mephstore/mephstore/verify"
)

func (a *app) verifyCmd() *cobra.Command {
	var (
		keyring                        string
		metaOnly, asJSON, quiet, reqDt bool
		max, jobs                      int
	)
	cmd := &cobra.Command{
		Use:   "verify TREE [FILTER...]",
		Short: "Check a published simplestreams tree (a directory or URL) as MAAS reads it",
		Long: `verify reads a published tree the way MAAS and the simplestreams client do: the index and every
products file it lists (with --keyring: index.sjson and the .sjson products files, each
clear-signed by a key of the keyring, and the detached .json.gpg signatures of their .json twins),
the fields MAAS needs, and every item's file, streamed through sha256 (and md5 when listed) and
checked against its size. TREE is a directory or an http(s) URL of the tree's root or of its
streams/v1/index.(s)json.

--max N and FILTERs (key=value, key!=value, key~regex, key!~regex) select the items whose
files are read; the metadata checks always cover everything. Each problem is printed on stderr
as FAIL [check] PRODUCT VERSION ITEM (PATH): REASON; the last line on stdout is
"verify: N products, M items verified" or "verify: FAILED: K problems".

Exit status: 0 the tree passed, 1 a check failed, 2 usage or setup error (bad flag, no such
directory, unusable keyring).`,
		Example: `  mephstore verify --keyring /etc/mephstore/keyring.gpg /srv/images/daily
  mephstore verify --keyring keyring.gpg http://127.0.0.1:8080/daily/
  mephstore verify --metadata-only --keyring keyring.gpg https://mirror.example/ephemeral-v3/stable/
  mephstore verify --max 1 -j 8 --json --keyring keyring.gpg /srv/images/stable arch=amd64`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := verify.Options{MetadataOnly: metaOnly, Max: max, Jobs: jobs, RequireDetached: reqDt, Client: a.fetchClient()}
			var err error
			if o.Filters, err = catalog.ParseFilters(args[1:]); err != nil {
				return usageError{err}
			}
			if keyring != "" {
				if o.Keyring, err = pgp.ReadKeyring(keyring); err != nil {
					return usageError{err}
				}
			}
			rep, err := verify.Verify(ctxOf(cmd), args[0], o)
			if errors.Is(err, verify.ErrSetup) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(a.stderr, p)
			}
			if asJSON {
				if err := jsonOut(a.stdout, rep); err != nil {
					return err
				}
			} else if !quiet {
				signed := "unsigned"
				if rep.Signed {
					signed = "signatures checked"
				}
				fmt.Fprintf(a.stdout, "%s: %d products, %d versions, %d items (%s); %d files read (%s) in %.1fs\n",
					rep.Source, rep.Products, rep.Versions, rep.Items, signed, rep.Files, progress.HumanBytes(rep.Bytes), rep.Seconds)
			}
			if !rep.OK() {
				fmt.Fprintf(a.stdout, "verify: FAILED: %d problems\n", len(rep.Problems))
				return silentError{exitFailure}
			}
			fmt.Fprintf(a.stdout, "verify: %d products, %d items verified\n", rep.Products, rep.Selected)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&keyring, "keyring", "k", "", "public keyring (binary or armoured): the tree must be signed by one of its keys")
	f.BoolVar(&metaOnly, "metadata-only", false, "check metadata and signatures, read no item files")
	f.BoolVar(&reqDt, "require-detached", false, "with --keyring, a missing .json.gpg is a failure")
	f.IntVar(&max, "max", 0, "read the newest N versions of each product (0: all)")
	f.IntVarP(&jobs, "jobs", "j", 0, "parallel readers (default 2 for a directory, 4 for a URL)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON (then the last line)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only problems and the last line")
	return cmd
}

// devCmd holds developer commands: not part of the interface operators use.
func (a *app) devCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dev", Short: "Developer tools (test trees)", Hidden: true}
	var keyOut, signKey string
	mk := &cobra.Command{
		Use:   "make-tree OUT [GENERATOR FLAGS]",
		Short: "Write a MAAS v3 test tree (make-test-stream's flags: --releases, --arches, --kernels, --versions, --data-size, --seed, --break)",
		Example: `  mephstore dev make-tree --key-out /tmp/keys /tmp/tree -- --versions 3
  mephstore dev make-tree /tmp/big -- --releases 12 --arches 5 --kernels 8 --versions 40`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := streamgen.ParseArgs(args[1:])
			if err != nil {
				return usageError{err}
			}
			switch {
			case signKey != "":
				if spec.Signer, err = pgp.ReadSigningKey(signKey, nil); err != nil {
					return err
				}
			case keyOut != "":
				if spec.Signer, _, err = pgp.WriteNewKey(keyOut, "mephstore test trees", "test@example.invalid"); err != nil {
					return err
				}
			}
			st, err := streamgen.Write(args[0], spec)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "wrote %s: %d products, %d versions, %d items, %d files\n", args[0], st.Products, st.Versions, st.Items, st.Files)
			return nil
		},
	}
	mk.Flags().StringVar(&keyOut, "key-out", "", "make a signing key in this directory (signing-key.asc, keyring.gpg) and sign the tree")
	mk.Flags().StringVar(&signKey, "sign-key", "", "sign the tree with this secret key")
	cmd.AddCommand(mk, a.makeCloudTreeCmd())
	return cmd
}

// makeCloudTreeCmd writes a cloud-images-like upstream for sync, with its
// build config (OUT/config.yaml) and, with --key-out, a key that signs it.
func (a *app) makeCloudTreeCmd() *cobra.Command {
	var releases, versions int
	var arches []string
	var keyOut string
	var metaOnly bool
	cmd := &cobra.Command{
		Use:     "make-cloud-tree OUT",
		Short:   "Write a cloud-images-like upstream tree for sync, and its build config (OUT/config.yaml)",
		Example: "  mephstore dev make-cloud-tree --releases 20 --arches amd64,arm64,armhf,i386,ppc64el,s390x --versions 400 --metadata-only /tmp/up",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := cloudgen.Tree{Releases: releases, Versions: versions, Arches: arches, MetadataOnly: metaOnly}
			if keyOut != "" {
				var err error
				if t.Signer, _, err = pgp.WriteNewKey(keyOut, "mephstore test trees", "test@example.invalid"); err != nil {
					return err
				}
			}
			p, err := cloudgen.WriteTree(args[0], t)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "wrote %s: %d releases x %d arches x %d versions; products file %s\n", args[0], releases, len(arches), versions, p)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&releases, "releases", 2, "releases (r00, r01, ...)")
	f.StringSliceVar(&arches, "arches", []string{"amd64", "arm64"}, "arches")
	f.IntVar(&versions, "versions", 3, "versions per product (daily serials from 20260101)")
	f.StringVar(&keyOut, "key-out", "", "make a signing key in this directory and sign the tree")
	f.BoolVar(&metaOnly, "metadata-only", false, "write the metadata only, no image files (for planning benchmarks)")
	return cmd
}
