"""Print the requirements pyproject.toml declares for some extras, one per line (a pip requirements file).

The Dockerfiles install these before the code is copied, so a code change does not reinstall them, and no
build of the package runs before its real sources are there (a build against stub files left a stale
``build/`` behind that the final install reused). ``tests/test_docker_install.py`` runs the same steps.

    python requirements.py pyproject.toml serve > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The base dependencies plus those of each extra, in the order pyproject.toml lists them."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    unknown = sorted(set(extras) - set(optional))
    if unknown:
        raise SystemExit(f"{pyproject}: no extra {', '.join(unknown)} (extras: {', '.join(sorted(optional))})")
    return list(dict.fromkeys(project.get("dependencies", []) + _expand(project["name"], optional, extras)))


def _expand(name: str, optional: dict[str, list[str]], extras: list[str]) -> list[str]:
    """The extras' requirements, with the project's own extras (``name[serve]``) replaced by their lists."""
    own = re.compile(rf"^{re.escape(name)}\[([^\]]+)\]$")
    out: list[str] = []
    for extra in extras:
        for requirement in optional[extra]:
            match = own.match(requirement.replace(" ", ""))
            if match:
                out += _expand(name, optional, [e.strip() for e in match.group(1).split(",")])
            else:
                out.append(requirement)
    return out


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python requirements.py pyproject.toml [extra ...]")
    extras = [e for arg in argv[1:] for e in arg.split(",") if e]  # "serve,milvus" or serve milvus
    print("\n".join(requirements(Path(argv[0]), extras)))


if __name__ == "__main__":
    main(sys.argv[1:])
