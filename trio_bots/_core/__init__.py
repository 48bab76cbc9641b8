"""The engine: the runtime, options, the swarm, bots, messaging, load drivers and transport.

Private: the public names are re-exported from `trio_bots`.
"""
