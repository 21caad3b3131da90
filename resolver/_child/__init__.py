"""Scripts gpustack runs in other interpreters, each alone there on nothing but the standard library; gpustack
imports some of their functions too. Importing this package loads nothing else."""

import os

PROBE_ENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_env.py")  # the one reader of a target
