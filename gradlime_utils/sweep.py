"""The former place of :mod:`gradlime_utils.runs.sweep`, kept for ``python -m gradlime_utils.sweep`` and
for code that imports ``gradlime_utils.sweep``: importing this module gives that module itself."""
import sys

from .runs import sweep as _module

if __name__ == "__main__":
    sys.exit(_module.main())
else:
    sys.modules[__name__] = _module
