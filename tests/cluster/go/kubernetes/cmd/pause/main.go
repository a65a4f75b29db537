// Command pause is the test node's sandbox ("pause") container: it holds the pod's
// namespaces and does nothing until SIGTERM/SIGINT, reaping any zombie it inherits as
// PID 1. Built statically by scripts/build-control-plane.sh and packaged as the image
// named by the node's containerd sandbox_image, so no registry is needed.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
