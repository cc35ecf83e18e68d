"""Load a module of an example folder by its path, under a name of its own.

`examples/byo/service.py` and `examples/adopt/service.py` share a file name: imported as plain
`service` through `sys.path`, whichever test module ran first in a process would hand its
service to the other.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def example_module(path: Path, name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
