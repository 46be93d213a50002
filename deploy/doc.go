// Package deploy checks Realmstream's deployment artefacts with their real
// loaders, offline: compose.yml with the compose-spec loader, the kustomize
// overlays with krusty and a strict decode into k8s.io/api types, the
// Dockerfile with the BuildKit parser, and the service binaries (built the way
// the Dockerfile builds them) against the configuration the artefacts give
// them. No Docker engine or cluster is needed; the tests in this module are
// the proof, the functions here are what they share.
package deploy
