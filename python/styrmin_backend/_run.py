"""Runs one driver action: ``python3 -m styrmin_backend._run`` with the action named in
the environment the agent sets. Prefect is not needed: when it is not installed, the
project's stand-in (``@flow``, ``@task``, ``get_run_logger``) is importable instead.

Exit status 0 when the function returned, 1 with the traceback on stderr when it raised.
"""

import asyncio
import importlib.util
import inspect
import json
import os
import sys
import traceback


def _load(path):
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _accepted(function, arguments):
    """Only the arguments the function declares (a setup action takes no target_version)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return arguments
    names = {p.name for p in parameters}
    return {key: value for key, value in arguments.items() if key in names}


async def _await(value):
    return await value


def main():
    if importlib.util.find_spec("prefect") is None:
        sys.path.append(os.environ["STYRMIN_PREFECT_SHIM"])
    module = _load(os.environ["STYRMIN_ACTION_FILE"])
    name = os.environ["STYRMIN_ACTION_FUNCTION"]
    function = getattr(module, name, None)
    if function is None:
        raise SystemExit(f"{os.environ['STYRMIN_ACTION_FILE']} has no function {name}")
    # A Prefect flow object keeps the plain function as `.fn`.
    function = getattr(function, "fn", function)
    arguments = _accepted(function, json.loads(os.environ["STYRMIN_ACTION_ARGUMENTS"]))
    result = function(**arguments)
    if inspect.isawaitable(result):
        asyncio.run(_await(result))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
