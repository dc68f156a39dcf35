"""Lifecycle actions of the my-app example driver.

Written the way existing Styrmin drivers are: Prefect flows importing the
primitives from styrmin_backend.actions. The agent runs them without Prefect.
"""

import re

from prefect import flow, get_run_logger
from styrmin_backend.actions import (
    execute_commands,
    get_context,
    start_components,
    upgrade_deployment_version,
)

MIGRATE = "my-app migrate"


@flow
async def check_database_settings(deployment_id: str) -> None:
    """setup/pre: fail early, before anything is installed."""
    context = await get_context(deployment_id)
    db_name = context["parameters"]["db_name"]
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", db_name):
        raise ValueError(f"db_name {db_name!r} is not a valid PostgreSQL identifier")
    get_run_logger().info("database name %s accepted", db_name)


@flow
async def migrate_after_setup(deployment_id: str) -> None:
    """setup/post: the release runs; create the schema and the first admin."""
    logger = get_run_logger()
    logger.info("running the first migration of %s", deployment_id)
    await execute_commands(deployment_id, "server", [MIGRATE, "my-app seed-admin"])


@flow
async def upgrade(deployment_id: str, target_version: str) -> None:
    """upgrade/core: replaces the default core, so it upgrades the release itself."""
    logger = get_run_logger()
    logger.info("upgrading %s to %s", deployment_id, target_version)
    await upgrade_deployment_version(deployment_id, target_version)
    await start_components(deployment_id, ["server"])
    await execute_commands(deployment_id, "server", [MIGRATE])
