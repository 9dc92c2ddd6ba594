"""The boundary is enforced: the UI never loads torch or MPI, the engine never loads Textual."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def loaded_after_import(package: str) -> set[str]:
    """Import every module of `package` in a fresh interpreter; return what got loaded."""
    code = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        root = importlib.import_module({package!r})
        for info in pkgutil.walk_packages(root.__path__, prefix={package!r} + "."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
        print(" ".join(sorted(sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_importing_the_ui_loads_no_torch_and_no_mpi() -> None:
    loaded = loaded_after_import("ens_tui")
    assert "textual" in loaded
    assert not {"torch", "torchvision", "mpi4py"} & loaded


def test_importing_the_engine_loads_no_textual() -> None:
    loaded = loaded_after_import("engine")
    assert "torch" in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"textual", "textual_plotext", "ens_tui"}}
