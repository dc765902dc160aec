"""Containers: their records and spec, the lifecycle, exec sessions, logs, and the OCI config with its confinement."""
