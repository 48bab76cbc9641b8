"""Live faces of a run over HTTP: the Prometheus exporter (``--prometheus``) and the
web dashboard (``--web``).

They hang off `trio_bots.Swarm.on_tick`, once a second, and never off the hot
path. They need the ``web`` extra: ``pip install 'trio-bots[web]'``.

Example:
    >>> from trio_bots.web import WEB_MISSING
    >>> "trio-bots[web]" in WEB_MISSING
    True
"""

from ._dashboard import Dashboard as Dashboard
from ._dashboard import new_token as new_token
from ._dashboard import serve_dashboard as serve_dashboard
from ._prometheus import WEB_MISSING as WEB_MISSING
from ._prometheus import MetricsExporter as MetricsExporter
from ._prometheus import serve_metrics as serve_metrics

__all__ = [
    "WEB_MISSING",
    "Dashboard",
    "MetricsExporter",
    "new_token",
    "serve_dashboard",
    "serve_metrics",
]
