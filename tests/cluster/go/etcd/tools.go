//go:build tools

// Package tools imports etcd's server command so `go mod tidy` keeps every module it
// needs; scripts/build-control-plane.sh builds it from this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
