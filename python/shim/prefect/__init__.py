"""Styrmin's stand-in for the parts of Prefect that driver actions use: ``@flow``,
``@task`` and ``get_run_logger()``. It is on the path only when Prefect is not installed;
the flow runs as a plain function, and the logger's lines go to the flow-run log."""

import functools
import logging

from styrmin_backend._agent import call

__all__ = ["flow", "task", "get_run_logger"]


def _decorator(function=None, **_options):
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            return fn(*args, **kwargs)

        run.fn = fn
        return run

    if function is None:
        return wrap
    return wrap(function)


flow = _decorator
task = _decorator

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}


class _FlowRunLog(logging.Handler):
    def emit(self, record):
        try:
            level = _LEVELS.get(record.levelno, "info")
            call("log", level=level, message=self.format(record))
        except Exception:
            self.handleError(record)


def get_run_logger():
    logger = logging.getLogger("styrmin.action")
    if not any(isinstance(h, _FlowRunLog) for h in logger.handlers):
        logger.addHandler(_FlowRunLog())
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    return logger
