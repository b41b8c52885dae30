// Command mkblobs fills a store with N small unreferenced blobs (random
// bytes, committed in batches of 10,000 through the normal writer path), for
// the gc benchmark. Not part of mephstore.
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"

	"github.com/mephstore/mephstore/cas"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkblobs STORE N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := cas.Open(os.Args[1], cas.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for done := 0; done < n; {
		batch := make([][]byte, 0, 10000)
		for ; len(batch) < cap(batch) && done < n; done++ {
			b := make([]byte, 64)
			binary.LittleEndian.PutUint64(b, rng.Uint64())
			binary.LittleEndian.PutUint64(b[8:], uint64(done))
			batch = append(batch, b)
		}
		ss, err := s.Writer(ctx, "mkblobs")
		if err == nil {
			_, err = ss.PutBytes(ctx, batch...)
			if cerr := ss.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
