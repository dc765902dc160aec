"""lab: labs of QEMU/KVM virtual machines, each running a container engine."""

__version__ = "0.1.0"
