package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/fsx"
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
atomic directory exchange. Publishing an unchanged head writes nothing. The publish root and the signing key are remembered in the store.`,
		Example: `  mephstore key generate --out /etc/mephstore
  mephstore publish daily --publish-root /srv/images --sign-key /etc/mephstore/signing-key.asc
  mephstore publish stable                  # same root and key as last time
  mephstore publish daily --no-sign         # only .json files`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if noSign && signKey != "" {
				return usageError{errors.New("--sign-key and --no-sign do not go together")}
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			o, err := a.publishOptions(cmd, r.Store(), root, signKey, passFile, noSign)
			if err != nil {
				return err
			}
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
	f.StringVar(&root, "publish-root", "", "directory of the published trees (remembered in the store)")
	f.StringVar(&signKey, "sign-key", "", "armoured or binary secret key file (gpg --export-secret-keys; remembered)")
	f.StringVar(&passFile, "sign-passphrase-file", "", "file holding the key's passphrase (or MEPHSTORE_SIGN_PASSPHRASE)")
	f.BoolVar(&noSign, "no-sign", false, "write only the .json files, unsigned")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// settings reads settings remembered in the store ("" for unset ones).
func (a *app) settings(cmd *cobra.Command, s *cas.Store, names ...string) ([]string, error) {
	ss, err := s.Reader(ctxOf(cmd))
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	out := make([]string, len(names))
	for i, n := range names {
		if out[i], err = ss.Setting(n); err != nil {
			return nil, err
		}
	}
	return out, nil
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
			s, err := writeNewKey(out, name, email)
			if err != nil {
				return err
			}
			files := keyFiles(out)
			fmt.Fprintf(a.stdout, "key %s\n  secret:  %s (keep it; mode 0600, no passphrase)\n  keyring: %s (binary, for MAAS and gpgv)\n  keyring: %s (armoured)\n",
				s.Fingerprint(), files["secret"], files["public"], files["armored"])
			return nil
		},
	}
	gen.Flags().StringVar(&out, "out", "", "directory to write the key files to")
	gen.Flags().StringVar(&name, "name", "mephstore", "name in the key's user id")
	gen.Flags().StringVar(&email, "email", "mephstore@localhost", "email in the key's user id")
	cmd.AddCommand(gen)
	return cmd
}

// keyFiles are the files key generate writes in dir.
func keyFiles(dir string) map[string]string {
	return map[string]string{"secret": filepath.Join(dir, "signing-key.asc"), "public": filepath.Join(dir, "keyring.gpg"), "armored": filepath.Join(dir, "keyring.asc")}
}

// writeNewKey makes a signing key and writes it into dir (made if needed):
// the secret key, and the public keyring binary and armoured. An existing
// key is never overwritten.
func writeNewKey(dir, name, email string) (*pgp.Signer, error) {
	files := keyFiles(dir)
	for _, p := range files {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("%s exists: not overwriting a key", p)
		}
	}
	s, err := pgp.GenerateKey(name, email)
	if err != nil {
		return nil, err
	}
	if err := fsx.MkdirDurable(dir, 0o700); err != nil {
		return nil, err
	}
	var sec, pub, arm strings.Builder
	if err := s.WriteSecret(&sec); err != nil {
		return nil, err
	}
	s.WritePublic(&pub, false)
	s.WritePublic(&arm, true)
	for _, f := range []struct {
		path, data string
		mode       os.FileMode
	}{{files["secret"], sec.String(), 0o600}, {files["public"], pub.String(), 0o644}, {files["armored"], arm.String(), 0o644}} {
		if err := fsx.WriteFileAtomic(f.path, []byte(f.data), f.mode); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// publishOptions resolves where and how to publish: the flags, else what
// the store remembers.
func (a *app) publishOptions(cmd *cobra.Command, s *cas.Store, root, signKey, passFile string, noSign bool) (publish.Options, error) {
	saved, err := a.settings(cmd, s, publish.SettingRoot, publish.SettingSignKey)
	if err != nil {
		return publish.Options{}, err
	}
	savedRoot, savedKey := saved[0], saved[1]
	if root == "" {
		root = savedRoot
	}
	if root == "" {
		return publish.Options{}, usageError{errors.New("no publish root yet: give --publish-root DIR (it is remembered)")}
	}
	o := publish.Options{Root: root, Meters: a.meters()}
	if noSign {
		return o, nil
	}
	key := signKey
	if key == "" {
		key = savedKey
	}
	if key == "" {
		return o, usageError{errors.New("give --sign-key FILE (it is remembered) or --no-sign; 'mephstore key generate' makes a key")}
	}
	pass := []byte(a.getenv("MEPHSTORE_SIGN_PASSPHRASE"))
	if passFile != "" {
		b, err := os.ReadFile(passFile)
		if err != nil {
			return o, err
		}
		pass = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	if o.Signer, err = pgp.ReadSigningKey(key, pass); err != nil {
		return o, err
	}
	o.SignKeyPath, err = filepath.Abs(key)
	return o, err
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
				saved, err := a.settings(cmd, s, publish.SettingRoot)
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
