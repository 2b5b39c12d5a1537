//! File mode: Kubernetes-style YAML documents read into [`Resources`].
