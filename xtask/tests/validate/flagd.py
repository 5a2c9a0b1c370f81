"""Evaluates a rendered flagd file with PyPI's openfeature-flagd-core, an implementation no
one here wrote. Usage: python3 flagd.py FILE FLAG KEYS; prints how many of KEYS targeting keys
(`user-0` … `user-<KEYS-1>`) resolve the boolean FLAG to true."""
import sys

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

path, flag, keys = sys.argv[1], sys.argv[2], int(sys.argv[3])
core = FlagdCore()
with open(path, encoding="utf-8") as file:
    core.set_flags(file.read())
on = sum(
    1
    for i in range(keys)
    if core.resolve_boolean_value(flag, False, EvaluationContext(targeting_key=f"user-{i}")).value
)
print(on)
