"""Suite-wide set-up."""

import sys

# Machines of this kind export PYTHONDONTWRITEBYTECODE=1.  Without bytecode
# caches pytest rewrites the asserts of every test module and of every
# module of its plugins' packages (hypothesis, schemathesis, anyio: some
# 350 modules) again on each run, about 10 s of a unit run; let it cache them
# in __pycache__ like any development checkout does.
sys.dont_write_bytecode = False
