package cas

import (
	"context"
	"errors"
	"maps"
	"slices"
)

// Setting reads a setting remembered in the store ("" when unset).
func (ss *Session) Setting(name string) (string, error) {
	var v string
	err := ss.View(func(txn Txn) error {
		b, err := txn.Get(append([]byte{PrefixConfig}, name...))
		if errors.Is(err, ErrNoRecord) {
			return nil
		}
		v = string(b)
		return err
	})
	return v, err
}

// SetSetting remembers a setting in the store.
func (ss *Session) SetSetting(name, value string) error {
	return ss.update(func(txn Txn) error {
		return txn.Set(append([]byte{PrefixConfig}, name...), []byte(value))
	})
}

// SetSettings sets several settings in one transaction.
func (ss *Session) SetSettings(set map[string]string) error {
	return ss.update(func(txn Txn) error {
		for _, name := range slices.Sorted(maps.Keys(set)) {
			if err := txn.Set(append([]byte{PrefixConfig}, name...), []byte(set[name])); err != nil {
				return err
			}
		}
		return nil
	})
}

// Settings calls fn for every setting whose name starts with prefix, in
// name order.
func (ss *Session) Settings(prefix string, fn func(name, value string) error) error {
	return ss.View(func(txn Txn) error {
		return txn.Scan(append([]byte{PrefixConfig}, prefix...), nil, func(k, v []byte) error {
			return fn(string(k[1:]), string(v))
		})
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
