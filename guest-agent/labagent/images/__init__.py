"""Images: the OCI layout store, layers unpacked once, docker-save/OCI loading, the built-in busybox."""
