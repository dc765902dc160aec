"""Container networking on the node: the bridge, a netns and veth per container (and a pool of them), nftables."""
