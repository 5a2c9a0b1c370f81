"""Evaluates a rendered flagd file with PyPI's openfeature-flagd-core, an implementation no
one here wrote. Usage: python3 flagd.py FILE KEYS FLAG...; prints JSON: for each boolean FLAG
the value it resolves to for each targeting key `customer-0` … `customer-<KEYS-1>` (the
caller's default: false)."""
import json
import sys

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

path, keys, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
core = FlagdCore()
with open(path, encoding="utf-8") as file:
    core.set_flags(file.read())
values = {
    flag: [
        core.resolve_boolean_value(
            flag, False, EvaluationContext(targeting_key=f"customer-{i}")
        ).value
        for i in range(keys)
    ]
    for flag in flags
}
print(json.dumps(values))
