"""kubesweep: Kubernetes-native hyperparameter sweeps."""
