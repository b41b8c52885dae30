package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/progress"
	"github.com/mephstore/mephstore/publish"
)

func (a *app) publishCmd() *cobra.Command {
	var (
		root, signKey, passFile string
		noSign, asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "publish STREAM",
		Short: "Render a stream's head as a signed simplestreams tree under PUBLISH_ROOT/STREAM",
		Long: `publish renders STREAM's head under PUBLISH_ROOT/STREAM/ (the URL a MAAS boot source or
sstream-mirror points at): data files first (hard links into PUBLISH_ROOT/data, shared by every
stream), then a new streams/v1 (products files named by their content, signed: .sjson
clear-signed, .json.gpg detached; then the index files) that replaces the live one in a single
atomic directory exchange. Publishing an unchanged head writes nothing. The publish root and the signing key are remembered in the store.

PUBLISH_ROOT may be a bucket prefix on an S3-compatible server, s3://BUCKET/PREFIX (the endpoint
from ?endpoint=URL, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; credentials from the standard AWS
variables or ~/.aws/credentials): each stream keeps its own data/, copied there, and index.json
is written last (docs/s3.md).`,
		Example: `  mephstore key generate --out /etc/mephstore
  mephstore publish daily --publish-root /srv/images --sign-key /etc/mephstore/signing-key.asc
  mephstore publish stable                  # same root and key as last time
  mephstore publish daily --no-sign         # only .json files
  mephstore publish stable --publish-root s3://mirror/www   # to a bucket (docs/s3.md)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if noSign && signKey != "" {
				return usageError{errors.New("--sign-key and --no-sign do not go together")}
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			// The settings, pending builds, stream and published mark
			// are read in one open of the database (the lease's writer
			// session ends the sharing).
			defer r.Store().ShareReads()()
			o, err := publish.Resolve(ctxOf(cmd), r.Store(), publish.Choice{Root: root, SignKey: signKey,
				PassphraseFile: passFile, Passphrase: a.getenv("MEPHSTORE_SIGN_PASSPHRASE"), NoSign: noSign})
			if err != nil {
				return usageIf(err)
			}
			o.Meters = a.meters()
			c, res, err := build.PublishStream(ctxOf(cmd), r, args[0], o)
			if c != nil {
				out := a.stdout
				if asJSON {
					out = a.stderr
				}
				fmt.Fprintf(out, "%s: committed %s (%s): %s added, %s already in the stream\n", args[0],
					plural(len(c.Builds), "pending build"), strings.Join(c.Builds, ", "),
					plural(len(c.Result.Added), "version"), plural(len(c.Result.Skipped), "version"))
				for _, v := range c.Result.Skipped {
					fmt.Fprintf(out, "  kept as it was: %s\n", v)
				}
			}
			if err != nil {
				return err
			}
			if asJSON {
				return jsonOut(a.stdout, res)
			}
			if res.Unchanged {
				fmt.Fprintf(a.stdout, "%s: snapshot %s is published already in %s; nothing written\n", res.Stream, short(res.Snapshot), res.Dir)
				return nil
			}
			how := "signed"
			if !res.Signed {
				how = "UNSIGNED (--no-sign: only .json files)"
			}
			fmt.Fprintf(a.stdout, "%s: published snapshot %s to %s, %s: %s, %s; data: %d new files (%s, %d copied), %d metadata files written\n",
				res.Stream, short(res.Snapshot), res.Dir, how, plural(res.Products, "product"), plural(res.Items, "item"),
				res.DataNew, progress.HumanBytes(res.DataBytes), res.DataCopied, len(res.FilesWritten))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "publish-root", "", "directory (or s3://bucket/prefix) of the published trees (remembered in the store)")
	f.StringVar(&signKey, "sign-key", "", "armoured or binary secret key file (gpg --export-secret-keys; remembered)")
	f.StringVar(&passFile, "sign-passphrase-file", "", "file holding the key's passphrase (or MEPHSTORE_SIGN_PASSPHRASE)")
	f.BoolVar(&noSign, "no-sign", false, "write only the .json files, unsigned")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func (a *app) keyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Signing keys"}
	var out, name, email string
	gen := &cobra.Command{
		Use:   "generate --out DIR",
		Short: "Make a signing key: DIR/signing-key.asc (secret) and DIR/keyring.gpg (public, for MAAS)",
		Example: `  mephstore key generate --out /etc/mephstore --name "Example images" --email images@example.com
  # give keyring.gpg to MAAS (boot source keyring_filename) and sstream-mirror (--keyring)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{errors.New("key generate needs --out DIR")}
			}
			s, files, err := pgp.WriteNewKey(out, name, email)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "key %s\n  secret:  %s (keep it; mode 0600, no passphrase)\n  keyring: %s (binary, for MAAS and gpgv)\n  keyring: %s (armoured)\n",
				s.Fingerprint(), files.Secret, files.Public, files.Armored)
			return nil
		},
	}
	gen.Flags().StringVar(&out, "out", "", "directory to write the key files to")
	gen.Flags().StringVar(&name, "name", "mephstore", "name in the key's user id")
	gen.Flags().StringVar(&email, "email", "mephstore@localhost", "email in the key's user id")
	cmd.AddCommand(gen)
	return cmd
}

func (a *app) serveCmd() *cobra.Command {
	var addr, root string
	so := publish.DefaultServeOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the publish root over HTTP (for tests and small sites; use nginx in production)",
		Example: `  mephstore serve --addr 127.0.0.1:8080
  # MAAS boot source: http://HOST:8080/stable/   sstream-mirror: http://HOST:8080/stable/streams/v1/index.sjson`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if root == "" {
				s, err := a.openStore()
				if err != nil {
					return err
				}
				saved, err := s.ReadSettings(ctxOf(cmd), publish.SettingRoot)
				if err != nil {
					return err
				}
				if root = saved[0]; root == "" {
					return usageError{errors.New("no publish root yet: give --publish-root DIR")}
				}
			}
			err := publish.Serve(ctxOf(cmd), addr, root, so, a.log, func(at string) {
				fmt.Fprintf(a.stdout, "serving %s on http://%s/ (Ctrl-C stops)\n", root, at)
			})
			if err == nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on")
	cmd.Flags().StringVar(&root, "publish-root", "", "directory to serve (default: the store's publish root)")
	cmd.Flags().DurationVar(&so.HeaderTimeout, "header-timeout", so.HeaderTimeout, "time a client has to send its request headers")
	cmd.Flags().DurationVar(&so.IdleTimeout, "idle-timeout", so.IdleTimeout, "close keep-alive connections idle this long")
	cmd.Flags().DurationVar(&so.StallTimeout, "stall-timeout", so.StallTimeout, "cut off a response the client has not read from for this long")
	return cmd
}
