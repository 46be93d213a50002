package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// CheckStreams reports whether every stream of the contract exists, without
// creating or changing any: the start of a service that was not told to
// create streams. The error names the missing streams.
func CheckStreams(ctx context.Context, js jetstream.JetStream) error {
	var missing []string
	for _, want := range StreamConfigs(StreamOptions{}) {
		_, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			missing = append(missing, want.Name)
			continue
		}
		if err != nil {
			return fmt.Errorf("wire: stream %s: %w (is JetStream enabled on the server?)", want.Name, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("wire: stream(s) %s do not exist", strings.Join(missing, ", "))
	}
	return nil
}
