"""A worker that is not async: the CLI must say so and exit 2 before running."""


def worker(bot):
    pass
