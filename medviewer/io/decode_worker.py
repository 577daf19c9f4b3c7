"""The decoder worker process: answers jobs from :mod:`medviewer.io.decoder_pool`.

Started as ``python -m medviewer.io.decode_worker`` (or, in the desktop bundle,
``medviewer --medviewer-decode-worker``, see cli.main), a worker reads ``(job, args)``
requests on stdin (jobs: decode frames of a file or of a batch of zip members, read a batch
of headers) and writes the result, or an error message, on stdout. No job leaves a zip
archive open after it (see :func:`medviewer.io.archive.keep_open`).
"""

from __future__ import annotations

import pickle
import sys
from typing import IO, Any

from medviewer.core.errors import LoadError
from medviewer.io.decoder_pool import job_location


def _jobs() -> dict[str, Any]:
    # imported here, not above: cli imports this module for serve() on every start
    from functools import partial

    from medviewer.io.pydicom_pixels import decode_batch, decode_frames
    from medviewer.io.scan import read_candidates

    # one worker per core: each decodes on its one thread (see decode_frames)
    return {
        "decode_frames": partial(decode_frames, one_thread=True),
        "decode_batch": partial(decode_batch, one_thread=True),
        "read_candidates": read_candidates,
    }


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Worker loop: answer requests until stdin closes."""
    import warnings

    warnings.filterwarnings("ignore", module="pydicom")
    jobs = _jobs()
    while True:
        try:
            job, args = pickle.load(stdin)  # trusted: the parent medviewer process
        except EOFError:
            return
        reply: tuple[bool, Any]
        try:
            reply = (True, jobs[job](*args))
        except LoadError as exc:
            reply = (False, str(exc))
        except Exception as exc:  # noqa: BLE001 - a job's failure must not end the worker
            reply = (False, f"{job}{job_location(args)} failed: {type(exc).__name__}: {exc}")
        pickle.dump(reply, stdout, protocol=5)
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
