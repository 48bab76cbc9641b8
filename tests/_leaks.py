"""What a test checks to prove that nothing outlived a swarm: open fds and live tasks."""

from __future__ import annotations

import os

import trio.lowlevel


def open_fds() -> int:
    """How many fds this process has open now."""
    return len(os.listdir("/proc/self/fd"))


def live_task_names() -> list[str]:
    """The names of every task under trio's root task (the root itself left out)."""
    names: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                names.append(child.name)
                walk(child)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    walk(root)
    return names
