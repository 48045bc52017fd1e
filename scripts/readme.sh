#!/bin/bash
# Splice docs/configuration.md (generated from server/config/keys.go) into
# README.md between its BEGIN/END markers, so the README's configuration
# reference is always the generated one.
set -euo pipefail
cd "$(dirname "$0")/.."
/usr/bin/env python3 - <<'PY'
import re
readme = open("README.md").read()
ref = open("docs/configuration.md").read()
# Drop the generated-file comment and demote headings by one level.
ref = re.sub(r"<!--.*?-->\n*", "", ref, flags=re.S)
ref = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", ref, flags=re.M).strip()
ref = ref.replace("# Configuration reference", "# Configuration reference", 1)
begin = re.search(r"<!-- BEGIN docs/configuration.md.*?-->\n", readme)
end = readme.index("<!-- END docs/configuration.md -->")
readme = readme[: begin.end()] + ref + "\n" + readme[end:]
open("README.md", "w").write(readme)
PY
