"""The helper package as driver actions see it: the runner, the Prefect stand-in and the
channel to the agent (a fake agent on a Unix socket). Run by scripts/test.sh:

    python3 -m unittest discover -s python/tests
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeAgent:
    """Answers each request with `reply(request)` and records what it was sent."""

    def __init__(self, directory, reply):
        self.path = os.path.join(directory, "agent.sock")
        self.requests = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen()
        self.reply = reply
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                data = b""
                while not data.endswith(b"\n"):
                    data += connection.recv(65536)
                request = json.loads(data)
                self.requests.append(request)
                connection.sendall(json.dumps(self.reply(request)).encode() + b"\n")


def run_action(source, function, arguments, reply, extra_path=None, context=None):
    """Runs `function` of an actions.py holding `source` the way the agent does."""
    with tempfile.TemporaryDirectory() as directory:
        agent = FakeAgent(directory, reply)
        actions = os.path.join(directory, "actions.py")
        with open(actions, "w", encoding="utf-8") as file:
            file.write(textwrap.dedent(source))
        context_file = os.path.join(directory, "context.json")
        with open(context_file, "w", encoding="utf-8") as file:
            json.dump(context or {"parameters": {"db_name": "shop"}}, file)
        path = [PYTHON_DIR]
        if extra_path:
            path.insert(0, extra_path)
        environment = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(path),
            STYRMIN_PREFECT_SHIM=os.path.join(PYTHON_DIR, "shim"),
            STYRMIN_ACTION_SOCKET=agent.path,
            STYRMIN_ACTION_TOKEN="secret-token",
            STYRMIN_ACTION_FILE=actions,
            STYRMIN_ACTION_FUNCTION=function,
            STYRMIN_ACTION_ARGUMENTS=json.dumps(arguments),
            STYRMIN_CONTEXT_FILE=context_file,
            STYRMIN_DEPLOYMENT_ID="dep-1",
        )
        done = subprocess.run(
            [sys.executable, "-m", "styrmin_backend._run"],
            env=environment,
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=60,
        )
        agent.server.close()
        return done, agent.requests


def ok(_request):
    return {"ok": True, "result": None}


THIRD_PARTY = """
    from prefect import flow, get_run_logger
    from styrmin_backend.actions import (
        GlobalContext,
        execute_commands,
        start_components,
        stop_components,
    )

    @flow(name="upgrade")
    async def upgrade(deployment_id: str, target_version: str) -> None:
        logger = get_run_logger()
        context = GlobalContext.current()
        logger.info("upgrading %s of %s to %s", context.parameters.db_name, deployment_id, target_version)
        await stop_components(deployment_id, ["task-worker"])
        await execute_commands(deployment_id, "server", ["migrate"])
        await start_components(deployment_id, "task-worker")
"""


class ThirdPartyActions(unittest.TestCase):
    def test_a_prefect_flow_runs_unchanged_and_calls_the_agent_in_order(self):
        done, requests = run_action(
            THIRD_PARTY, "upgrade", {"deployment_id": "dep-1", "target_version": "2.4.0"}, ok
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(
            [r["op"] for r in requests],
            ["log", "stop_components", "execute_commands", "start_components"],
        )
        self.assertTrue(all(r["token"] == "secret-token" for r in requests))
        self.assertEqual(requests[0]["message"], "upgrading shop of dep-1 to 2.4.0")
        self.assertEqual(requests[1]["components"], ["task-worker"])
        self.assertEqual(requests[2]["commands"], ["migrate"])
        self.assertEqual(requests[3]["components"], ["task-worker"])

    def test_a_setup_action_is_called_without_target_version(self):
        source = """
            def check(deployment_id):
                print("checked", deployment_id)
        """
        done, _ = run_action(
            source, "check", {"deployment_id": "dep-1", "target_version": "2.4.0"}, ok
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "checked dep-1")

    def test_a_failing_primitive_fails_the_action_with_its_traceback(self):
        def refuse(request):
            return {"ok": False, "error": "`migrate` exited with code 3"}

        done, _ = run_action(THIRD_PARTY, "upgrade", {"deployment_id": "dep-1", "target_version": "1"}, refuse)
        self.assertEqual(done.returncode, 1)
        self.assertIn("Traceback", done.stderr)
        self.assertIn("ActionError: `migrate` exited with code 3", done.stderr)

    def test_another_deployment_is_refused_before_any_call(self):
        source = """
            from styrmin_backend.actions import stop_components
            async def act(deployment_id):
                await stop_components("someone-else", ["server"])
        """
        done, requests = run_action(source, "act", {"deployment_id": "dep-1"}, ok)
        self.assertEqual(done.returncode, 1)
        self.assertIn("runs for deployment dep-1, not someone-else", done.stderr)
        self.assertEqual(requests, [])

    def test_an_installed_prefect_is_used_instead_of_the_stand_in(self):
        with tempfile.TemporaryDirectory() as site:
            os.mkdir(os.path.join(site, "prefect"))
            with open(os.path.join(site, "prefect", "__init__.py"), "w") as file:
                file.write("REAL = True\ndef flow(f): return f\ndef get_run_logger(): raise RuntimeError\n")
            source = """
                import prefect
                def which(deployment_id):
                    print("real" if getattr(prefect, "REAL", False) else "stand-in")
            """
            done, _ = run_action(source, "which", {"deployment_id": "dep-1"}, ok, extra_path=site)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "real")


if __name__ == "__main__":
    unittest.main()
