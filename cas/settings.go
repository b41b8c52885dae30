package cas

import (
	"context"
	"errors"

	badger "github.com/dgraph-io/badger/v4"
)

// Setting reads a setting remembered in the store ("" when unset).
func (ss *Session) Setting(name string) (string, error) {
	var v string
	err := ss.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(append([]byte{PrefixConfig}, name...))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		b, err := it.ValueCopy(nil)
		v = string(b)
		return err
	})
	return v, err
}

// SetSetting remembers a setting in the store.
func (ss *Session) SetSetting(name, value string) error {
	return ss.update(func(txn *badger.Txn) error {
		return txn.Set(append([]byte{PrefixConfig}, name...), []byte(value))
	})
}

// Settings calls fn for every setting whose name starts with prefix, in
// name order.
func (ss *Session) Settings(prefix string, fn func(name, value string) error) error {
	return ss.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = append([]byte{PrefixConfig}, prefix...)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(string(it.Item().Key()[1:]), string(v)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReadSettings reads settings in a short read session ("" for unset ones).
func (s *Store) ReadSettings(ctx context.Context, names ...string) ([]string, error) {
	ss, err := s.Reader(ctx)
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
