package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Framing: on TCP every packet is a 4-byte big-endian length followed by that
// many bytes of protobuf. WebSocket binary messages carry the same payload
// without the prefix.
const (
	// FrameHeaderSize is the size of the length prefix.
	FrameHeaderSize = 4
	// DefaultMaxFrame is the default maximum payload size of one frame.
	DefaultMaxFrame = 4 << 10
)

// ErrFrameTooLarge is returned (wrapped in *FrameSizeError) for a frame whose
// declared length exceeds the maximum.
var ErrFrameTooLarge = errors.New("wire: frame too large")

// ErrEmptyFrame is returned for a zero-length frame.
var ErrEmptyFrame = errors.New("wire: empty frame")

// FrameSizeError reports a frame larger than the reader's maximum.
type FrameSizeError struct {
	Size, Max uint32
}

func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("wire: frame of %d bytes exceeds the maximum of %d", e.Size, e.Max)
}

// Unwrap makes errors.Is(err, ErrFrameTooLarge) true.
func (e *FrameSizeError) Unwrap() error { return ErrFrameTooLarge }

// FrameReader reads length-prefixed frames. Memory is bounded by the maximum
// frame size: the declared length is checked before anything is allocated or
// read, and the payload buffer is reused between frames.
type FrameReader struct {
	r   *bufio.Reader
	max uint32
	buf []byte
	hdr [FrameHeaderSize]byte
}

// NewFrameReader returns a reader of frames of at most max bytes (DefaultMaxFrame if max <= 0).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 16<<10)
	}
	return &FrameReader{r: br, max: uint32(max)}
}

// Next returns the next frame's payload. The slice is valid until the next
// call. An oversized frame returns *FrameSizeError and the stream is no longer
// in sync: the caller must close the connection after reporting the error.
func (fr *FrameReader) Next() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[:])
	if n == 0 {
		return nil, ErrEmptyFrame
	}
	if n > fr.max {
		return nil, &FrameSizeError{Size: n, Max: fr.max}
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n, max(int(n), 256))
	}
	fr.buf = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("wire: truncated frame: %w", err)
	}
	return fr.buf, nil
}

// AppendFrame appends the length prefix and payload to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// WriteFrame writes one frame to w.
func WriteFrame(w io.Writer, payload []byte) error {
	var hdr [FrameHeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}
