package harness

// resource_meta's wire format, read with encoding/binary: the protobuf runtimes of the two suites are
// different releases, and a shared one would tie their dependency sets.

import (
	"encoding/binary"
	"testing"
)

// AlterPayload flips one byte inside field 2 (payload) of a SignedResourceMeta, leaving the wire format
// valid: the connector must notice the signature no longer matches.
func AlterPayload(t testing.TB, meta []byte) []byte {
	t.Helper()
	out := append([]byte(nil), meta...)
	for at := 0; at < len(out); {
		tag, n := binary.Uvarint(out[at:])
		if n <= 0 {
			t.Fatalf("resource_meta is not protobuf: bad tag at byte %d", at)
		}
		at += n
		var size int
		switch tag & 7 { // wire type
		case 0: // varint
			_, size = binary.Uvarint(out[at:])
		case 1: // 64-bit
			size = 8
		case 2: // length-delimited
			l, m := binary.Uvarint(out[at:])
			if m <= 0 || l > uint64(len(out)-at-m) {
				t.Fatalf("resource_meta is not protobuf: bad length at byte %d", at)
			}
			if tag>>3 == 2 {
				if l == 0 {
					t.Fatal("empty payload")
				}
				out[at+m+int(l)/2] ^= 0x01
				return out
			}
			size = m + int(l)
		case 5: // 32-bit
			size = 4
		default:
			t.Fatalf("resource_meta is not protobuf: wire type %d at byte %d", tag&7, at)
		}
		if size <= 0 || size > len(out)-at {
			t.Fatalf("resource_meta is not protobuf: truncated at byte %d", at)
		}
		at += size
	}
	t.Fatal("resource_meta has no payload field")
	return nil
}
