#!/usr/bin/env python3
"""Time Python Jinja2 rendering a values template, for BENCHMARKS.md.

Usage: bench-jinja2-render.py TEMPLATE CONTEXT_JSON ITERATIONS ROUNDS

Compiles the template once, then renders it ITERATIONS times per round with the
same environment the differential test uses (scripts/jinja2-reference-render.py).
Prints one JSON object: {"rounds_seconds": [...], "output": "<one rendering>"}.
"""

import importlib.util
import json
import os
import sys
import time


def reference_module():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jinja2-reference-render.py")
    spec = importlib.util.spec_from_file_location("jinja2_reference_render", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    template_path, context_path, iterations, rounds = sys.argv[1:5]
    iterations, rounds = int(iterations), int(rounds)
    ref = reference_module()
    env = ref.make_environment()
    template = env.from_string(ref.read_text(template_path))
    context = ref.load_context(context_path)
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            template.render(context)
        seconds.append(time.perf_counter() - start)
    json.dump({"rounds_seconds": seconds, "output": template.render(context)}, sys.stdout)


if __name__ == "__main__":
    main()
