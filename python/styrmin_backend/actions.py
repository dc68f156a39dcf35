"""The primitives a driver's Python actions call (SPEC §5), with the names and call shapes
of Styrmin's ``styrmin_backend.actions``. Each is a coroutine, as actions ``await`` them;
the work is done by the agent, which streams what happens into the flow-run log.

An action can only act on the deployment it runs for: any other ``deployment_id`` is an
error.
"""

import asyncio
import json
import os

from ._agent import ActionError, call

__all__ = [
    "ActionError",
    "GlobalContext",
    "execute_commands",
    "get_context",
    "http_check",
    "start_component",
    "start_components",
    "stop_component",
    "stop_components",
    "upgrade_deployment_version",
    "wait_ready",
]


class GlobalContext(dict):
    """The frozen Context of the Instance being deployed (SPEC §3): a mapping whose keys
    also read as attributes (``context.parameters["replicas"]``, ``context.instance.namespace``).
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise TypeError("the Context is frozen")

    @classmethod
    def wrap(cls, value):
        if isinstance(value, dict):
            return cls({key: cls.wrap(item) for key, item in value.items()})
        if isinstance(value, list):
            return [cls.wrap(item) for item in value]
        return value

    @classmethod
    def current(cls):
        """The Context of the action's own deployment."""
        with open(os.environ["STYRMIN_CONTEXT_FILE"], encoding="utf-8") as file:
            return cls.wrap(json.load(file))

    def model_dump(self):
        """A plain ``dict`` copy, as the Pydantic model gives."""
        return json.loads(json.dumps(self))


def _own(deployment_id):
    mine = os.environ["STYRMIN_DEPLOYMENT_ID"]
    if str(deployment_id) != mine:
        raise ActionError(
            f"this action runs for deployment {mine}, not {deployment_id}"
        )


def _names(components):
    if isinstance(components, str):
        return [components]
    return list(components)


async def _call(op, deployment_id, **arguments):
    _own(deployment_id)
    return await asyncio.to_thread(call, op, **arguments)


async def get_context(deployment_id):
    """The frozen Context (a ``GlobalContext``) of the deployment."""
    _own(deployment_id)
    return GlobalContext.current()


async def stop_components(deployment_id, components):
    """Scales the components' workloads to 0 (remembering their replicas) and waits until
    their pods are gone. They stay stopped, across a Helm upgrade too, until started."""
    await _call("stop_components", deployment_id, components=_names(components))


async def start_components(deployment_id, components):
    """Restores the replicas ``stop_components`` remembered and waits until ready."""
    await _call("start_components", deployment_id, components=_names(components))


stop_component = stop_components
start_component = start_components


async def execute_commands(deployment_id, component, commands):
    """Runs each command (through ``sh -c``) in a ready pod of the component, in order;
    a non-zero exit fails. Returns each command's output."""
    if isinstance(commands, str):
        commands = [commands]
    return await _call(
        "execute_commands", deployment_id, component=component, commands=list(commands)
    )


async def upgrade_deployment_version(deployment_id, version):
    """The default core of a flow: applies the new Instance and waits until it is Ready.
    A driver's ``core`` action calls it itself."""
    await _call("upgrade_deployment_version", deployment_id, version=str(version))


async def wait_ready(deployment_id, components):
    """Waits until every workload of the components has all its replicas ready."""
    await _call("wait_ready", deployment_id, components=_names(components))


async def http_check(deployment_id, service, path="/", expect_status=200):
    """Calls one of the deployment's services and fails unless it answers
    ``expect_status``."""
    await _call(
        "http_check",
        deployment_id,
        service=service,
        path=path,
        expect_status=int(expect_status),
    )
