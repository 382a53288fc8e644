"""Where the external tools live: Foundry binaries (anvil, forge, cast).

They come from the project's npm packages (``@foundry-rs/<tool>-<platform>``, linked into
``.foundry/bin`` by scripts/setup.sh), or from PATH when a user has a native Foundry
install. npm's ``node_modules/.bin`` wrappers are not used: they drop the exit code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ConfigError


def foundry_binary(name: str, project_root: Path) -> Path:
    """Path of ``anvil``/``forge``/``cast``: .foundry/bin, the npm platform package, then PATH."""
    linked = project_root / ".foundry" / "bin" / name
    if linked.exists():
        return linked
    for native in sorted(project_root.glob(f"node_modules/@foundry-rs/{name}-*/bin/{name}")):
        return native
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ConfigError(
        f"{name} not found in {project_root / '.foundry/bin'}, node_modules or on PATH; run scripts/setup.sh"
    )
