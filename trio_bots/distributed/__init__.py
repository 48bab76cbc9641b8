"""One swarm over several processes: shards, their driver, and the merged result.

See docs/scale-out.md.
"""
