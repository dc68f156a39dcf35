"""The channel to the agent that runs this action: one JSON request and one JSON reply per
connection over a Unix socket in a private directory, with the action's own token."""

import json
import os
import socket


class ActionError(RuntimeError):
    """A primitive the agent could not carry out; the message says why."""


def call(op, **arguments):
    path = os.environ["STYRMIN_ACTION_SOCKET"]
    request = dict(arguments, op=op, token=os.environ["STYRMIN_ACTION_TOKEN"])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(path)
        connection.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply += chunk
    if not reply:
        raise ActionError(f"the agent closed the channel during {op}")
    answer = json.loads(reply)
    if not answer.get("ok"):
        raise ActionError(answer.get("error") or f"{op} failed")
    return answer.get("result")
