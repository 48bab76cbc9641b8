"""Measurements: HDR histograms per name, snapshots, exact merges, `Stats` and thresholds.

The engine feeds a `Recorder`; everything else reads its plain-data
*snapshots*, which pickle, travel between processes and `merge` exactly.
`format_value` writes a figure in its unit, for `ThresholdResult` and
every report alike.

Example:
    >>> from trio_bots.metrics import Recorder, stats_from_snapshot
    >>> rec = Recorder(start_time=0.0)
    >>> rec.record("login", 2000)
    >>> stats_from_snapshot(rec.snapshot(1.0, bots_running=1, active_seconds=1.0))["login"].count
    1
"""

from .._util import fixup_module_metadata
from ._format import format_duration as format_duration
from ._format import format_percentile_label as format_percentile_label
from ._format import format_rate as format_rate
from ._format import format_value as format_value
from ._hdr import same_bucket as same_bucket
from ._hdrlog import HdrLogWriter as HdrLogWriter
from ._hdrlog import read_hdr_log as read_hdr_log
from ._live import LiveThresholds as LiveThresholds
from ._live import ThresholdState as ThresholdState
from ._recorder import Recorder as Recorder
from ._recorder import merge as merge
from ._stats import FailureGroup as FailureGroup
from ._stats import Stats as Stats
from ._stats import StatsMap as StatsMap
from ._stats import TimelineBucket as TimelineBucket
from ._stats import TimelineName as TimelineName
from ._stats import failures_from_snapshot as failures_from_snapshot
from ._stats import stats_from_snapshot as stats_from_snapshot
from ._stats import timeline_from_snapshot as timeline_from_snapshot
from ._thresholds import RunFigures as RunFigures
from ._thresholds import Threshold as Threshold
from ._thresholds import ThresholdResult as ThresholdResult
from ._thresholds import assert_thresholds as assert_thresholds
from ._thresholds import check_thresholds as check_thresholds
from ._thresholds import parse_threshold as parse_threshold
from ._thresholds import raise_failed as raise_failed

__all__ = [
    "FailureGroup",
    "HdrLogWriter",
    "LiveThresholds",
    "Recorder",
    "RunFigures",
    "Stats",
    "StatsMap",
    "Threshold",
    "ThresholdResult",
    "ThresholdState",
    "TimelineBucket",
    "TimelineName",
    "assert_thresholds",
    "check_thresholds",
    "failures_from_snapshot",
    "format_duration",
    "format_percentile_label",
    "format_rate",
    "format_value",
    "merge",
    "parse_threshold",
    "raise_failed",
    "read_hdr_log",
    "same_bucket",
    "stats_from_snapshot",
    "timeline_from_snapshot",
]

fixup_module_metadata(__name__, {name: globals()[name] for name in __all__})
del fixup_module_metadata

