"""Torch modules: time-specific batch norm and its policy, transition blocks, pre-/post-net, the FRNN, retiming."""
