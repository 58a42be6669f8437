"""Check that the built API reference documents every public name.

Usage: ``python docs/api/check_reference.py BUILD_DIR``. Reads the build's ``objects.inv`` and
fails (exit 1, naming what is missing) when a name in the ``__all__`` of a public module has no
entry, or when a public module exists that the reference does not cover: ``mesiboscript.aio``,
once it is added, needs its page (``docs/api/index.rst`` says how).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from sphinx.util.inventory import InventoryFile

PUBLIC_MODULES = ["mesiboscript", "mesiboscript.server", "mesiboscript.testing", "mesiboscript.aio"]


def main(build: str) -> int:
    with open(Path(build) / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
    by_type = getattr(inventory, "data", inventory)  # Sphinx 8.2+ wraps the dict of older ones
    documented = {name for entries in by_type.values() for name in entries}
    missing: list[str] = []
    for module_name in PUBLIC_MODULES:
        if importlib.util.find_spec(module_name) is None:
            continue  # not written yet
        if module_name not in documented:
            missing.append(f"the module {module_name} (add a page to docs/api/)")
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            if name.startswith("__"):
                continue  # __version__: in the title
            # A re-export counts where it is documented with its own module.
            if not any(
                entry.startswith("mesiboscript") and entry.rsplit(".", 1)[-1] == name
                for entry in documented
            ):
                missing.append(f"{module_name}.{name}")
    for what in missing:
        print(f"not in the API reference: {what}", file=sys.stderr)
    print(f"API reference: {len(documented)} entries, {len(missing)} public names missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
