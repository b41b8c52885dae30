// Command s3put measures writing SIZE bytes to an S3 server, one way per
// run (so /usr/bin/time sees each one's peak memory): "raw" is a plain
// streamed PUT through the client mephstore uses; "pool" is the same
// bytes through s3store.Pool (hashed, checked, then made visible under
// their digest, after a server-side copy); "known" is the pool with the
// digest given up front (straight to the final key, no copy; the digest
// is computed before the clock starts). bench/s3.sh runs both on the same server in the same
// run. Credentials come from the AWS environment variables.
//
//	s3put raw|pool|known ENDPOINT BUCKET SIZE_MIB
//
// bench/s3store.sh uses two more ways, the raw references of the whole
// store on a bucket: "file" PUTs one file as it is (against mephstore
// ingest of it), "tree" PUTs every file of a directory with 4 requests in
// flight, as publish's linker copies (against mephstore publish of it):
//
//	s3put file ENDPOINT BUCKET PREFIX FILE
//	s3put tree ENDPOINT BUCKET PREFIX DIR
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/s3store"
)

// source is SIZE pseudo-random bytes made on the fly (no disk, no memory).
type source struct {
	r    *rand.ChaCha8
	left int64
}

func (s *source) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.left)]
	s.r.Read(p)
	s.left -= int64(len(p))
	return len(p), nil
}

func main() {
	if len(os.Args) == 6 && (os.Args[1] == "file" || os.Args[1] == "tree") {
		if err := putPaths(context.Background(), os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]); err != nil {
			fmt.Fprintln(os.Stderr, "s3put:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: s3put raw|pool ENDPOINT BUCKET SIZE_MIB")
		os.Exit(2)
	}
	mib, err := strconv.ParseInt(os.Args[4], 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3put:", err)
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[1], os.Args[2], os.Args[3], mib<<20); err != nil {
		fmt.Fprintln(os.Stderr, "s3put:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, mode, endpoint, bucket string, size int64) error {
	b, err := s3store.Open(ctx, s3store.Config{Endpoint: endpoint, Bucket: bucket, Prefix: "bench-" + mode})
	if err != nil {
		return err
	}
	seed := [32]byte{byte(time.Now().UnixNano()), byte(time.Now().UnixNano() >> 8)} // new bytes each run
	exp := cas.Expect{Size: size}
	if mode == "known" {
		h := sha256.New()
		io.Copy(h, &source{r: rand.NewChaCha8(seed), left: size})
		exp.Digest = digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	}
	src := &source{r: rand.NewChaCha8(seed), left: size}
	start := time.Now()
	switch mode {
	case "raw":
		_, err = b.PutStream(ctx, "raw", src, -1, s3store.PartSize)
	case "pool", "known":
		var w cas.BlobWriter
		if w, err = s3store.NewPool(b).CreateExpecting(ctx, exp); err == nil {
			if _, err = io.Copy(w, src); err == nil {
				_, _, err = w.Commit(ctx, exp)
			}
		}
	default:
		err = fmt.Errorf("mode %q: want raw, pool or known", mode)
	}
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("%s %.2f %.0f\n", mode, secs, float64(size)/secs/(1<<20))
	return nil
}

// putPaths PUTs a file, or every file under a directory (4 at a time),
// under prefix, and prints the seconds and the bytes.
func putPaths(ctx context.Context, mode, endpoint, bucket, prefix, path string) error {
	b, err := s3store.Open(ctx, s3store.Config{Endpoint: endpoint, Bucket: bucket, Prefix: prefix})
	if err != nil {
		return err
	}
	var files []string
	if mode == "file" {
		files = []string{path}
	} else if err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	}); err != nil {
		return err
	}
	start := time.Now()
	var total atomic.Int64
	next := make(chan string)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for p := range next {
				key := strings.TrimPrefix(p, path)
				if mode == "file" {
					key = filepath.Base(p)
				}
				n, err := putFile(ctx, b, p, key)
				total.Add(n)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, f := range files {
		next <- f
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("%s %.2f %d files %d bytes\n", mode, secs, len(files), total.Load())
	return nil
}

func putFile(ctx context.Context, b *s3store.Bucket, p, key string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	key = "x/" + strings.TrimPrefix(key, "/")
	if fi.Size() < s3store.PartSize {
		data, err := io.ReadAll(f)
		if err != nil {
			return 0, err
		}
		_, err = b.Put(ctx, key, data, s3store.Cond{})
		return fi.Size(), err
	}
	_, err = b.PutStream(ctx, key, f, fi.Size(), s3store.PartSize)
	return fi.Size(), err
}
