"""setuptools hook: generate the retryd.v1 gRPC stubs from proto/ whenever the package is built.

All metadata lives in pyproject.toml; this file only adds the code-generation step.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_proto  # noqa: E402


class build_py(_build_py):
    """``build_py`` that also runs protoc (grpc_tools) over proto/retryd/v1."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            gen_proto.generate(Path(__file__).resolve().parent / "src")
        else:
            gen_proto.generate(Path(self.build_lib))


setup(cmdclass={"build_py": build_py})
