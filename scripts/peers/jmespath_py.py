#!/usr/bin/env python3
"""PyPI `jmespath`: a precompiled expression searched over a parsed document.
Usage: jmespath_py.py EXPRESSION DOCUMENT.json EXPECTED_JSON SECONDS"""
import json
import sys

import jmespath

from timing import run

expr, doc = sys.argv[1], json.load(open(sys.argv[2]))
expected, seconds = json.loads(sys.argv[3]), float(sys.argv[4])
compiled = jmespath.compile(expr)
assert compiled.search(doc) == expected, (expr, compiled.search(doc))
run("python jmespath", seconds, lambda: compiled.search(doc))
