//go:build tools

// Package tools imports kwok's controller command so `go mod tidy` keeps every module it
// needs; scripts/build-kwok.sh builds it from this module.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
