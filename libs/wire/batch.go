package wire

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protowire"
)

// Command batches (docs/command-batches.md): a message on cmd.<zone> holds
// one schema.Command (Realm-Schema SchemaVersion) or several, as a command
// batch (Realm-Schema SchemaCommandBatch, Realm-Batch the count): the
// payload is the commands, each length-delimited in field 1, byte-compatible
// with `message CommandBatch { repeated Command commands = 1; }`. Every
// command of a batch is for the subject's zone and carries its own command
// id, session, player, client seq and receive time in its body, as a single
// command does. A batch's Nats-Msg-Id is CommandBatchID: JetStream
// deduplicates the batch (its publisher's retries), not the commands in it.
const (
	// SchemaCommandBatch is the Realm-Schema of a command batch.
	SchemaCommandBatch = "2"
	// HeaderBatch is the number of commands of a batch.
	HeaderBatch = "Realm-Batch"
	// MaxBatchCommands bounds the commands of one batch, for its readers.
	MaxBatchCommands = 1024
)

// Errors of ForEachCommand.
var (
	ErrBatchMalformed = errors.New("wire: malformed command batch")
	ErrBatchCount     = errors.New("wire: command batch count does not match its Realm-Batch header")
)

// IsCommandBatch reports whether a cmd.<zone> message's headers say it is a
// command batch.
func IsCommandBatch(h nats.Header) bool {
	return h != nil && h.Get(HeaderSchema) == SchemaCommandBatch
}

// CommandBatchID is the Nats-Msg-Id of a gateway's n-th batch:
// b/<instance>/<boot>/<n>. boot differs at every start of the process (a
// restarted gateway's counter starts again), so the id is unique across
// restarts and JetStream's duplicate window drops only the publisher's own
// retries of the same batch.
func CommandBatchID(instance, boot string, n uint64) string {
	b := make([]byte, 0, len(instance)+len(boot)+24)
	b = append(b, "b/"...)
	b = append(b, instance...)
	b = append(b, '/')
	b = append(b, boot...)
	b = append(b, '/')
	b = strconv.AppendUint(b, n, 10)
	return string(b)
}

// CommandBatchHeaderBuf is reusable storage of a batch's header values,
// like CommandHeaderBuf.
type CommandBatchHeaderBuf struct{ vals [3]string }

// Fill replaces the contents of h with the headers of a batch of n commands
// whose message id is msgID.
func (b *CommandBatchHeaderBuf) Fill(h nats.Header, msgID string, n int) {
	clear(h)
	b.vals = [3]string{msgID, SchemaCommandBatch, strconv.Itoa(n)}
	h[HeaderMsgID] = b.vals[0:1:1]
	h[HeaderSchema] = b.vals[1:2:2]
	h[HeaderBatch] = b.vals[2:3:3]
}

// AppendCommandBatchEntry appends one encoded schema.Command to a batch's
// payload.
func AppendCommandBatchEntry(dst, cmd []byte) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	return protowire.AppendBytes(dst, cmd)
}

// CommandBatchEntrySize is how many bytes AppendCommandBatchEntry adds for
// an encoded command of n bytes.
func CommandBatchEntrySize(n int) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(n)
}

// ForEachCommand calls fn with each encoded schema.Command that a cmd.<zone>
// message holds: its payload when it is a single command, every entry in
// order when it is a batch. A batch is checked whole before fn is first
// called: a truncated or foreign entry, an empty batch, more than
// MaxBatchCommands entries or a count other than its Realm-Batch header
// fail the whole message with an error wrapping ErrBatchMalformed or
// ErrBatchCount, and fn is never called for any of it. fn's slice aliases
// data. An error of fn stops the walk and is returned.
func ForEachCommand(h nats.Header, data []byte, fn func(cmd []byte) error) error {
	if !IsCommandBatch(h) {
		return fn(data)
	}
	n, err := countBatch(data)
	if err != nil {
		return err
	}
	if v := h.Get(HeaderBatch); v != "" {
		want, perr := strconv.Atoi(v)
		if perr != nil || want != n {
			return fmt.Errorf("%w: header %q, %d entries", ErrBatchCount, v, n)
		}
	}
	for len(data) > 0 {
		_, _, tl := protowire.ConsumeTag(data)
		v, vl := protowire.ConsumeBytes(data[tl:])
		if err := fn(v); err != nil {
			return err
		}
		data = data[tl+vl:]
	}
	return nil
}

// CommandBatchLen is the number of commands a cmd.<zone> message holds (1
// for a single command), or an error as ForEachCommand's.
func CommandBatchLen(h nats.Header, data []byte) (int, error) {
	if !IsCommandBatch(h) {
		return 1, nil
	}
	return countBatch(data)
}

func countBatch(data []byte) (int, error) {
	n := 0
	for off := 0; off < len(data); {
		num, typ, tl := protowire.ConsumeTag(data[off:])
		if tl < 0 {
			return 0, fmt.Errorf("%w: entry %d at byte %d: %v", ErrBatchMalformed, n, off, protowire.ParseError(tl))
		}
		if num != 1 || typ != protowire.BytesType {
			return 0, fmt.Errorf("%w: entry %d at byte %d: field %d type %d, want field 1 bytes", ErrBatchMalformed, n, off, num, typ)
		}
		_, vl := protowire.ConsumeBytes(data[off+tl:])
		if vl < 0 {
			return 0, fmt.Errorf("%w: entry %d at byte %d: %v", ErrBatchMalformed, n, off, protowire.ParseError(vl))
		}
		off += tl + vl
		n++
		if n > MaxBatchCommands {
			return 0, fmt.Errorf("%w: more than %d commands", ErrBatchMalformed, MaxBatchCommands)
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: no commands", ErrBatchMalformed)
	}
	return n, nil
}
