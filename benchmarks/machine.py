"""What every benchmark records about the machine it ran on (shared by the bench_* scripts)."""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any

import numpy as np


def machine_info(**versions: Any) -> dict[str, Any]:
    """Processor, cores, Python, numpy and medviewer versions, date, plus `versions` given."""
    import medviewer

    return {
        "processor": platform.processor() or cpu_model(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "medviewer": medviewer.__version__,
        "numpy": np.__version__,
        **versions,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
