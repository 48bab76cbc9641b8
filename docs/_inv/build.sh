#!/usr/bin/env bash
# Rebuild the intersphinx inventories kept here, so that the docs build offline.
#   python.inv  Debian's python3.11-doc  (/usr/share/doc/python3.11/html/objects.inv)
#   pytest.inv  Debian's python-pytest-doc (/usr/share/doc/python-pytest-doc/html/objects.inv)
#   trio.inv, anyio.inv  built from the sdists' docs with a minimal Sphinx configuration
#     (autodoc over the installed packages); only the inventory is kept.
# Run from the repository root in the venv: bash docs/_inv/build.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cp /usr/share/doc/python3.11/html/objects.inv "$here/python.inv"
cp /usr/share/doc/python-pytest-doc/html/objects.inv "$here/pytest.inv"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for spec in trio:Trio:docs/source anyio:AnyIO:docs; do
    IFS=: read -r pkg project src <<<"$spec"
    version=$(python -c "import importlib.metadata as m; print(m.version('$pkg'))")
    python -m pip download -q --no-deps --no-binary :all: "$pkg==$version" -d "$work"
    tar xzf "$work/$pkg-$version.tar.gz" -C "$work"
    sphinx-build -q -C -b html -D extensions=sphinx.ext.autodoc,sphinxcontrib_trio \
        -D master_doc=index -D project="$project" -D release="$version" -D version="$version" \
        -D suppress_warnings=all "$work/$pkg-$version/$src" "$work/$pkg-html" 2>/dev/null || true
    cp "$work/$pkg-html/objects.inv" "$here/$pkg.inv"
done
