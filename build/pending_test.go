package build

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestPendingItemJSON: a typed item is written exactly as the flat object
// of simplestreams (and of pending builds recorded before it was typed),
// and read back whole.
func TestPendingItemJSON(t *testing.T) {
	for _, tc := range []struct {
		it   PendingItem
		want string
	}{
		{PendingItem{FType: "squashfs", Path: "noble/amd64/20261122/squashfs", SHA256: "ab", Size: 12},
			`{"ftype":"squashfs","path":"noble/amd64/20261122/squashfs","sha256":"ab","size":12}`},
		{PendingItem{FType: "boot-kernel", Path: "p", SHA256: "cd", Size: 1 << 40, Extra: map[string]string{"kpackage": "linux-generic"}},
			`{"ftype":"boot-kernel","kpackage":"linux-generic","path":"p","sha256":"cd","size":1099511627776}`},
	} {
		b, err := json.Marshal(tc.it)
		if err != nil || string(b) != tc.want {
			t.Fatalf("marshal %+v: %s %v, want %s", tc.it, b, err, tc.want)
		}
		var back PendingItem
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, tc.it) {
			t.Fatalf("unmarshal %s: %+v %v", b, back, err)
		}
	}
	var it PendingItem
	for _, bad := range []string{`{"size":"12"}`, `{"kpackage":3}`, `[]`} {
		if err := json.Unmarshal([]byte(bad), &it); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
