//go:build tools

// Package tools imports the Kubernetes commands so `go mod tidy` keeps every module they
// need; scripts/build-control-plane.sh builds them from this module (with
// -mod=readonly, so go.sum must cover all of them). The node's own helpers (pause,
// fake-gpu-plugin) live in ./cmd and are tidied with it.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
