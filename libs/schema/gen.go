// Package schema holds the protobuf wire and event contracts of Realmstream:
// client packets, commands, events, zone updates, DB stats events, heartbeats
// and alerts. The Go code is generated; run `make proto` after editing a .proto.
package schema

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative client.proto world.proto ops.proto
