"""The former name of :mod:`gradlime_utils.shapes_benchmark` (the synthetic shapes benchmark), kept so that code
written against it keeps working: importing this module gives that module itself."""
import sys

from . import shapes_benchmark

sys.modules[__name__] = shapes_benchmark
