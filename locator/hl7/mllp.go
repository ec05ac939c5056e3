package hl7

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MLLP release 2 framing: a message travels as StartBlock, the message, EndBlock,
// CarriageReturn.
const (
	StartBlock     byte = 0x0B
	EndBlock       byte = 0x1C
	CarriageReturn byte = 0x0D
)

// DefaultMaxMessageBytes bounds a message when the caller sets no bound.
const DefaultMaxMessageBytes = 1 << 20

// ErrTooLarge is the error of a frame longer than the reader's bound. The frame was read
// to its end and dropped, so the stream stays usable; FrameReader.Next returns its first
// bytes with the error, enough to answer the message's header.
var ErrTooLarge = errors.New("message larger than the bound")

// keptOfTooLarge is how much of an oversized frame is kept to answer it (its MSH).
const keptOfTooLarge = 8 << 10

// FrameReader reads MLLP frames from a stream.
type FrameReader struct {
	r *bufio.Reader
	// Max bounds a frame's content (DefaultMaxMessageBytes when 0).
	Max int
	// OnStart, if set, is called when a frame's start block arrives: a server moves from
	// its idle timeout to the time a whole message may take.
	OnStart func()
	// Discarded counts bytes found outside frames and dropped, as MLLP has the receiver do.
	Discarded int64
}

// NewFrameReader reads frames from r.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 32<<10), Max: max}
}

// Next returns the content of the next frame. Bytes before a start block are dropped. A
// frame longer than Max is read to its end; its first bytes come back with ErrTooLarge. A
// start block inside a frame begins the frame again (the sender gave up on the first). A
// stream that ends inside a frame gives io.ErrUnexpectedEOF; one that ends between frames
// gives io.EOF.
func (fr *FrameReader) Next() ([]byte, error) {
	max := fr.Max
	if max <= 0 {
		max = DefaultMaxMessageBytes
	}
	for {
		b, err := fr.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if b == StartBlock {
			break
		}
		fr.Discarded++
	}
	if fr.OnStart != nil {
		fr.OnStart()
	}
	var buf []byte
	size := 0
	for {
		chunk, err := fr.r.ReadSlice(EndBlock)
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("stream ended inside a frame: %w", io.ErrUnexpectedEOF)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		content := chunk
		if err == nil {
			content = chunk[:len(chunk)-1]
		}
		if i := lastIndex(content, StartBlock); i >= 0 {
			// A new frame started: the sender abandoned the one before.
			fr.Discarded += int64(size + i + 1)
			buf, size = buf[:0], 0
			content = content[i+1:]
		}
		size += len(content)
		if size <= max {
			buf = append(buf, content...)
		} else if len(buf) < keptOfTooLarge {
			buf = append(buf, content[:min(len(content), keptOfTooLarge-len(buf))]...)
		}
		if err != nil {
			continue // the buffer filled before the end block
		}
		// The end block must be followed by a carriage return; a sender that omits it is
		// read leniently (the next byte is left for the next frame).
		if next, perr := fr.r.Peek(1); perr == nil && next[0] == CarriageReturn {
			_, _ = fr.r.ReadByte()
		}
		if size > max {
			if len(buf) > keptOfTooLarge {
				buf = buf[:keptOfTooLarge]
			}
			return buf, fmt.Errorf("%w of %d bytes (%d bytes)", ErrTooLarge, max, size)
		}
		return buf, nil
	}
}

func lastIndex(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// WriteFrame writes msg as one MLLP frame.
func WriteFrame(w io.Writer, msg []byte) error {
	frame := make([]byte, 0, len(msg)+3)
	frame = append(frame, StartBlock)
	frame = append(frame, msg...)
	frame = append(frame, EndBlock, CarriageReturn)
	_, err := w.Write(frame)
	return err
}
