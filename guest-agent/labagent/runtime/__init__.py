"""Running containers on the node: crun under a shim, supervision, cgroups, mounts, the mount namespace."""
