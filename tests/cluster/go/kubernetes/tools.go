//go:build tools

// Package tools imports the control-plane commands so `go mod tidy` keeps every
// module they need; scripts/build-control-plane.sh builds them from this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
