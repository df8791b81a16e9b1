#!/usr/bin/env python3
"""PyPI `cyclonedx-python-lib`: JSON text to the typed model (`json.loads` + `Bom.from_json`),
as our side goes from bytes to typed structs.
Usage: cyclonedx_py.py BOM.json SECONDS"""
import json
import sys
import warnings

from cyclonedx.model.bom import Bom

from timing import run

warnings.simplefilter("ignore")
data, seconds = open(sys.argv[1], "rb").read(), float(sys.argv[2])
run("cyclonedx-python-lib", seconds, lambda: Bom.from_json(json.loads(data)))  # type: ignore[attr-defined]
