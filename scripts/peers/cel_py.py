#!/usr/bin/env python3
"""PyPI `cel-python`: a compiled program evaluated with `object` bound to a Pod; the activation
is built on every evaluation (binding included, as on our side).
Usage: cel_py.py EXPRESSION OBJECT.json EXPECTED(true|false) SECONDS"""
import json
import sys

import celpy

from timing import run

expr, obj = sys.argv[1], json.load(open(sys.argv[2]))
expected, seconds = sys.argv[3] == "true", float(sys.argv[4])
env = celpy.Environment()
program = env.program(env.compile(expr))


def once():
    return program.evaluate({"object": celpy.json_to_cel(obj)})


assert bool(once()) == expected, (expr, once())
run("cel-python", seconds, once)
