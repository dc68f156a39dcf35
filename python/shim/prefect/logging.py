"""``from prefect.logging import get_run_logger``, as in Prefect."""

from prefect import get_run_logger

__all__ = ["get_run_logger"]
