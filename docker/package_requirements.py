"""Print the filmrec package's requirements, with the given extras, from pyproject.toml.

    python package_requirements.py pyproject.toml spark [airflow ...]

The Spark and Airflow images install these in a layer of their own, before the
package's wheel (installed with --no-deps): a change to the code then rebuilds one
small layer instead of reinstalling every dependency. Standard library only, as it
runs in a bare Python image.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# "filmrec[metadata]" inside an extra: the package's own extras, expanded in place.
SELF_REFERENCE = re.compile(r"^filmrec\[(?P<extras>[^\]]+)\]$")


def requirements(project: dict, extras: list[str]) -> list[str]:
    lines = list(project.get("dependencies", []))
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for line in project["optional-dependencies"][extra]:
            match = SELF_REFERENCE.match(line.replace(" ", ""))
            if match:
                pending += match["extras"].split(",")
            elif line not in lines:
                lines.append(line)
    return lines


def main(argv: list[str]) -> int:
    pyproject, *extras = argv
    project = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]
    print("\n".join(requirements(project, extras)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
