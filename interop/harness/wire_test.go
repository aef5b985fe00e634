package harness

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func field(num uint64, wire uint64, value []byte) []byte {
	b := binary.AppendUvarint(nil, num<<3|wire)
	if wire == 2 {
		b = binary.AppendUvarint(b, uint64(len(value)))
	}
	return append(b, value...)
}

func TestAlterPayloadFlipsOneByteOfFieldTwoOnly(t *testing.T) {
	payload := bytes.Repeat([]byte{0xaa}, 300) // a two-byte length
	var meta []byte
	meta = append(meta, field(1, 0, binary.AppendUvarint(nil, 1<<40))...) // key version, a long varint
	meta = append(meta, field(4, 5, []byte{1, 2, 3, 4})...)
	meta = append(meta, field(2, 2, payload)...)
	meta = append(meta, field(3, 2, []byte("signature"))...)
	got := AlterPayload(t, meta)
	start := len(meta) - len(field(3, 2, []byte("signature"))) - len(payload)
	var changed []int
	for i := range meta {
		if got[i] != meta[i] {
			changed = append(changed, i)
		}
	}
	if len(changed) != 1 || changed[0] < start || changed[0] >= start+len(payload) {
		t.Fatalf("changed bytes %v, want one inside the payload [%d, %d)", changed, start, start+len(payload))
	}
	if meta[changed[0]] != 0xaa {
		t.Fatal("AlterPayload changed its argument")
	}
}
