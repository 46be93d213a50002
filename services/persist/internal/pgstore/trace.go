package pgstore

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// startTx starts the span of one database's transaction of a batch, a child
// of the batch span (pipeline persist.write) when that span is recording;
// otherwise it returns nil and costs nothing.
func startTx(ctx context.Context, db *DB, p *part) trace.Span {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return nil
	}
	_, span := parent.TracerProvider().Tracer("github.com/realmstream/realmstream/services/persist/pgstore").Start(ctx, "persist.pg.tx",
		trace.WithAttributes(attribute.String("realm.db", db.Name), attribute.Int("realm.rows", len(p.events)),
			attribute.Int("realm.logical_shards", len(p.logicals)), attribute.Int("realm.player_patches", len(p.patches))))
	return span
}

func endTx(span trace.Span, inserted, skipped int, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.Int("realm.inserted", inserted), attribute.Int("realm.skipped", skipped))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "transaction failed")
	}
	span.End()
}
