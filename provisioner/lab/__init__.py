"""The use cases: create, destroy, start, stop, status, and reaching a lab's nodes.

The CLI calls these; these call the rooms (labfile, images, seed, hypervisor, remote,
state); the rooms never call back.
"""
