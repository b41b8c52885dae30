package cas

import (
	"bytes"
	"context"
	"testing"
)

// BenchmarkStage measures the ingest data path: read, hash and write with
// write-back, fsync. Run: go test -bench Stage -benchtime 20x ./cas
func BenchmarkStage(b *testing.B) {
	s := newStore(b)
	data := randBytes(64<<20, 1)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		st, err := s.Stage(context.Background(), bytes.NewReader(data), Unknown, nil)
		if err != nil {
			b.Fatal(err)
		}
		st.Discard()
	}
}

// BenchmarkCommitSmall measures staging 100 small blobs and committing them
// in one writer session (lock, badger open, one syncfs for the files,
// intents, renames, one syncfs for the directories, records, close).
func BenchmarkCommitSmall(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		var staged []*Staged
		for range 100 {
			i++
			st, err := s.StageUnsynced(ctx, bytes.NewReader(randBytes(512, uint64(i))), Unknown, nil)
			if err != nil {
				b.Fatal(err)
			}
			staged = append(staged, st)
		}
		ss, err := s.Writer(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ss.Commit(context.Background(), staged...); err != nil {
			b.Fatal(err)
		}
		ss.Close()
	}
}
