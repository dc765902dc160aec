"""`lab report`: the VM-versus-container comparison, filled in with this lab's own numbers."""
