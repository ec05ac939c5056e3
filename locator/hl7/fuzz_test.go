package hl7

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// FuzzParse: any bytes either parse or give an *Error; what parses encodes to a message
// that parses to the same thing, and an acknowledgement can always be built for it.
func FuzzParse(f *testing.F) {
	f.Add([]byte(a04))
	f.Add([]byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5||||||8859/1\rPID|1||X^^^Y||M\xfcller\\X0D\\^J\\F\\\r"))
	f.Add([]byte("MSH|^~\\&#|A|B|C|D|20260101||QBP^Q22|1|P|2.7\rQPD|IHE PDQ Query|t1|@PID.5.1.1^SMITH~@PID.7^19610704\rRCP|I|10^RD\r"))
	f.Add([]byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5||||||UNICODE UTF-8\rPID|1||\\X\\\r"))
	f.Add([]byte("MSH|"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			var he *Error
			if !errors.As(err, &he) {
				t.Fatalf("error is not an *Error: %v", err)
			}
			_ = Ack(PeekHeader(data), Responder{"RLS", "HIE"}, AR, "1", time.Unix(0, 0), "", he).Encode()
			return
		}
		text := m.String()
		out := m.Encode()
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if back.String() != text {
			t.Fatalf("round trip changed the message:\n%q\n%q", text, back.String())
		}
		_ = Ack(m.Header(), Responder{"RLS", "HIE"}, AA, "1", time.Unix(0, 0), "").Encode()
	})
}

// FuzzFrameReader: any stream gives frames, ErrTooLarge with a bounded prefix, or an
// end of stream; never more than the bound, never a panic.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte(frame("A")+"junk"+frame("B")), 16)
	f.Add([]byte("\x0b\x0b\x1c\x1c\r\r\x0b"), 1)
	f.Add([]byte(frame(string(bytes.Repeat([]byte("x"), 100)))), 10)
	f.Fuzz(func(t *testing.T, stream []byte, max int) {
		max = 1 + abs(max)%4096
		fr := NewFrameReader(bytes.NewReader(stream), max)
		for range len(stream) + 1 {
			got, err := fr.Next()
			switch {
			case err == nil:
				if len(got) > max {
					t.Fatalf("frame of %d bytes beyond the bound %d", len(got), max)
				}
				if bytes.IndexByte(got, StartBlock) >= 0 || bytes.IndexByte(got, EndBlock) >= 0 {
					t.Fatalf("frame holds a block character: %q", got)
				}
			case errors.Is(err, ErrTooLarge):
				if len(got) > keptOfTooLarge {
					t.Fatalf("oversized frame kept %d bytes", len(got))
				}
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
		t.Fatal("the reader did not reach the end of the stream")
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
