// Package bridge opens one end of the one-way bridge between the hot and
// the cold side: the medium a [bridge] configuration section describes
// (files on removable media, package filemedium; or a serial line,
// package serial), with the frame types that end reads. The frames
// themselves are package frame's (FRAMES.md).
//
// It is shared by both sides and must never import either side's code
// (relay, gateway, signer, node). It builds with CGO_ENABLED=0.
package bridge
