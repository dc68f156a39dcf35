#!/usr/bin/env python3
"""Render Styrmin values templates with Python's Jinja2: the reference output.

Styrmin's Rust renderer must produce exactly what Python Jinja2 3.x produces for
driver templates (existing drivers were written against the Python reference
implementation). This script is the oracle of the differential test corpus in
crates/styrmin-core/tests/jinja-corpus/.

Usage:
    jinja2-reference-render.py TEMPLATE CONTEXT_JSON
        Print the rendering of TEMPLATE to stdout, byte for byte (no newline is
        added). On a template error: message on stderr, exit status 1.

    jinja2-reference-render.py --serve
        One long-lived process for the differential fuzzer: reads one JSON
        request per line on stdin, {"template": str, "context": object}, and
        answers one JSON line on stdout: {"text": rendering} or {"error":
        "ExceptionType: message"}; after a rendering, {"values": ...} is the
        text read by yaml.safe_load in the JSON form Styrmin reads it into
        (see yaml_to_json; floats as {"float": repr}), or {"yaml_error": ...} when PyYAML refuses it,
        or {"unsupported": ...} for a value JSON cannot carry.

    jinja2-reference-render.py --batch TEMPLATE_DIR CONTEXT_JSON OUT_DIR
        Render every TEMPLATE_DIR/*.j2 in one process into OUT_DIR/<name>.out,
        or OUT_DIR/<name>.err (the error as "ExceptionType: message") when the
        template raises. Exit status 0 even when some templates raised.

The environment is jinja2.Environment() with every default left alone: lenient
Undefined (a missing key prints as ""), autoescape off, trim_blocks and
lstrip_blocks off, keep_trailing_newline off (one trailing newline of the
template is dropped), plus the three Styrmin filters.
"""

import datetime
import json
import os
import sys

import jinja2
import yaml


def _component_field(components, name, field):
    # The component must exist (a KeyError is a template error, as in the
    # reference); a field that is missing or null counts as an empty list.
    value = components[name].get(field)
    return [] if value is None else value


def component_env_vars(components, name):
    """components | component_env_vars("server") -> [{name, value}, ...]"""
    return _component_field(components, name, "env_vars")


def component_command(components, name):
    """components | component_command("server") -> [str, ...]"""
    return _component_field(components, name, "command")


def component_args(components, name):
    """components | component_args("server") -> [str, ...]"""
    return _component_field(components, name, "args")


def make_environment():
    env = jinja2.Environment()
    env.filters["component_env_vars"] = component_env_vars
    env.filters["component_command"] = component_command
    env.filters["component_args"] = component_args
    return env


def read_text(path):
    # Read bytes and decode, so that no newline translation happens here:
    # whatever Jinja2 itself does with \r\n is what the corpus records.
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def load_context(path):
    # json keeps the key order of the file in Python dicts; templates that
    # iterate over maps depend on it.
    return json.loads(read_text(path))


def render(env, template_path, context):
    return env.from_string(read_text(template_path)).render(context)


def write_text(path, text):
    with open(path, "wb") as f:
        f.write(text.encode("utf-8"))


def batch(template_dir, context_path, out_dir):
    env = make_environment()
    context = load_context(context_path)
    os.makedirs(out_dir, exist_ok=True)
    names = sorted(n for n in os.listdir(template_dir) if n.endswith(".j2"))
    failed = 0
    for name in names:
        out_path = os.path.join(out_dir, name + ".out")
        err_path = os.path.join(out_dir, name + ".err")
        # A stale file of the other kind from an earlier run would mislead.
        for stale in (out_path, err_path):
            if os.path.exists(stale):
                os.remove(stale)
        try:
            text = render(env, os.path.join(template_dir, name), context)
        except Exception as exc:  # any template error is recorded, not fatal
            failed += 1
            write_text(err_path, "%s: %s\n" % (type(exc).__name__, exc))
        else:
            write_text(out_path, text)
    print(
        "rendered %d templates, %d raised" % (len(names), failed),
        file=sys.stderr,
    )
    return 0


class Unsupported(Exception):
    """A value yaml.safe_load returns that has no JSON form Helm could take."""


def json_key(key):
    # Helm's own YAML-to-JSON conversion writes non-string keys as YAML writes them.
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, (str, int)):
        return str(key)
    if isinstance(key, float):
        return json.dumps(key)
    if isinstance(key, (datetime.date, datetime.datetime)):
        return key.isoformat()
    raise Unsupported("a mapping key of type %s" % type(key).__name__)


def yaml_to_json(value, exact_floats=False):
    """safe_load's result as JSON: timestamps as ISO 8601 text (Python's isoformat).

    With exact_floats, a float is written as {"float": repr(value)}, so a reader whose
    JSON parser rounds differently still sees Python's exact value.
    """
    if isinstance(value, dict):
        return {json_key(k): yaml_to_json(v, exact_floats) for k, v in value.items()}
    if isinstance(value, list):
        return [yaml_to_json(v, exact_floats) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise Unsupported("the integer %d, beyond 64 bits" % value)
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Unsupported("the float %r" % value)
        return {"float": repr(value)} if exact_floats else value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    raise Unsupported("a value of type %s" % type(value).__name__)


def serve():
    """Answers render requests, one JSON line each, until stdin closes."""
    env = make_environment()
    out = sys.stdout
    out.reconfigure(encoding="utf-8", newline="\n")
    for line in sys.stdin:
        request = json.loads(line)
        answer = {}
        try:
            text = env.from_string(request["template"]).render(request["context"])
        except Exception as exc:  # any template error is an answer, not fatal
            answer["error"] = "%s: %s" % (type(exc).__name__, exc)
        else:
            answer["text"] = text
            try:
                answer["values"] = yaml_to_json(yaml.safe_load(text), exact_floats=True)
            except Unsupported as exc:
                answer["unsupported"] = str(exc)
            except Exception as exc:  # a YAML error, or a RecursionError
                answer["yaml_error"] = "%s: %s" % (type(exc).__name__, exc)
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 0


def main(argv):
    if argv == ["--serve"]:
        return serve()
    if len(argv) == 4 and argv[0] == "--batch":
        return batch(argv[1], argv[2], argv[3])
    if len(argv) == 2 and not argv[0].startswith("-"):
        env = make_environment()
        try:
            text = render(env, argv[0], load_context(argv[1]))
        except Exception as exc:  # TemplateError, or e.g. a KeyError of a filter
            print("%s: %s" % (type(exc).__name__, exc), file=sys.stderr)
            return 1
        # Exactly the rendering: UTF-8, no newline translation, nothing added.
        sys.stdout.reconfigure(encoding="utf-8", newline="")
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
