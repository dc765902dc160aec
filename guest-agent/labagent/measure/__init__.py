"""Measurements run on a node, as root, by `lab report` and bench/bench.py.

    sudo env PYTHONPATH=$AGENT_DIR python3 -m labagent.measure.containers [RUNS]
    sudo env PYTHONPATH=$AGENT_DIR python3 -m labagent.measure.api_floor

with AGENT_DIR where lab deploys the agent (labagent.contract).

Each prints one JSON line. They speak to the engine through labagent.client, and build
the bare-crun comparison from the engine's own modules, as deployed on the node.
"""
