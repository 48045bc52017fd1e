# dais: which requirements of a pip requirements file are not satisfied by
# the installed packages? Run with the venv's python: python -c <this> FILE.
# Prints one JSON line: {"missing": [...], "mismatched": [...], "invalid": [...]}.
import json
import re
import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
except ImportError:
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:
        Requirement = None


class Simple:
    """Names only, when neither packaging nor pip is importable."""

    def __init__(self, line):
        m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if not m:
            raise ValueError(line)
        self.name, self.marker, self.specifier = m.group(0), None, None


if Requirement is None:
    Requirement = Simple

missing, mismatched, invalid = [], [], []
with open(sys.argv[1], encoding="utf-8") as f:
    for raw in f:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            invalid.append(line)
            continue
        try:
            req = Requirement(line)
        except Exception:
            invalid.append(line)
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            mismatched.append("%s: installed %s, wanted %s" % (req.name, have, req.specifier))
print(json.dumps({"missing": missing, "mismatched": mismatched, "invalid": invalid}))
