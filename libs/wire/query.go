package wire

// The request and reply shapes of persist's query API (JSON over
// request/reply) that other services use. persist answers with these types
// and the world (history below the JetStream floor, trimming) decodes them,
// so the two cannot drift apart. docs/persist.md lists every field.

// StoredEvent is one event as the store keeps it (a row of the events table
// or its Pebble equivalent).
type StoredEvent struct {
	Seq      uint64 `json:"seq"`   // stream sequence of its message in EVT
	Index    uint32 `json:"index"` // position in its message (0 for a legacy message)
	TSNs     int64  `json:"ts_ns"`
	Zone     string `json:"zone"`
	EventID  string `json:"event_id"`
	PlayerID string `json:"player_id,omitempty"`
	Type     string `json:"type"`
	Fence    uint64 `json:"fence"`
	Payload  []byte `json:"payload"` // schema.Event protobuf (base64 in JSON)
}

// ZoneRangeRequest asks QueryZoneRange for a zone's stored events with
// stream sequence in [FromSeq, ToSeq] (ToSeq 0: no upper bound), in (seq,
// index) order, at most Limit; a next page starts after (AfterSeq,
// AfterIndex) when HasAfter.
type ZoneRangeRequest struct {
	Zone       string `json:"zone"`
	FromSeq    uint64 `json:"from_seq"`
	ToSeq      uint64 `json:"to_seq"`
	AfterSeq   uint64 `json:"after_seq,omitempty"`
	AfterIndex uint32 `json:"after_index,omitempty"`
	HasAfter   bool   `json:"has_after,omitempty"`
	Limit      int    `json:"limit"`
}

// ZoneRangeReply answers QueryZoneRange: the zone's events in (seq, index)
// order; More says the page is full (ask again after the last row).
type ZoneRangeReply struct {
	Events []StoredEvent `json:"events"`
	More   bool          `json:"more"`
	Error  string        `json:"error,omitempty"`
}

// AckFloorReply answers QueryAckFloor (request: {}). AckFloor is the stream
// sequence up to which every EVT message is acknowledged by persist's
// durable consumer, so durably stored (acks follow the commit): trimming
// evt.<zone> below it never removes an event the store lacks.
type AckFloorReply struct {
	AckFloor      uint64 `json:"ack_floor"`
	StreamLastSeq uint64 `json:"stream_last_seq"`
	NumPending    uint64 `json:"num_pending"`
	NumAckPending int    `json:"num_ack_pending"`
	Error         string `json:"error,omitempty"`
}
