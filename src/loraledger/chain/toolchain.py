"""Where the external tools live: Foundry binaries (anvil, forge, cast) and node.

They come from the project's ``node_modules`` (npm ``@foundry-rs/*``), or from PATH when a
user has a native Foundry install.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ConfigError


def foundry_binary(name: str, project_root: Path) -> Path:
    """Path of ``anvil``/``forge``/``cast``: node_modules/.bin first, then PATH."""
    local = project_root / "node_modules" / ".bin" / name
    if local.exists():
        return local
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ConfigError(
        f"{name} not found in {project_root / 'node_modules/.bin'} or on PATH; "
        "run `npm ci` in the project root (or scripts/setup.sh)"
    )
