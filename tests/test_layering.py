"""The module layering: a method module imports foundation modules only, never another method module; foundation
modules import neither methods nor the modules that compose them. Module-level and function-level imports both count
(`from .x import y`, `from diversification.x import y`, `from diversification import x`, `import diversification.x`)."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1]/'diversification'
FOUNDATIONS = {'core', 'data', 'ops', 'synthcity', 'metrics', 'models', 'train', 'segtrain'}
METHODS = {'augmix_mixup', 'seg_augmix', 'efficientseg', 'sumix', 'tail_cutmix'}
COMPOSING = {'ensemble', 'explorers', 'reliability', 'claims', 'reproduce'}


def package_imports(path: Path) -> set[tuple[str, int]]:
    "(module of this package, line) for every import of one in the file at `path`, wherever it sits (module, function, class)."
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split('.')
                if parts[0] == 'diversification' and len(parts) > 1: found.add((parts[1], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or '').split('.')
            if node.level == 0 and mod[0] != 'diversification': continue
            if node.level > 1: raise AssertionError(f"{path.name}:{node.lineno}: relative import above the package")
            sub = mod[1:] if node.level == 0 else mod
            if sub and sub[0]: found.add((sub[0], node.lineno))
            else: found |= {(a.name, node.lineno) for a in node.names}           # `from . import x`, `from diversification import x`
    return found


def modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PKG.glob('*.py')) if not p.stem.startswith('_')}


def test_every_module_has_a_layer():
    "A new module must be placed in a layer here (and so is checked by the tests below)."
    assert set(modules()) == FOUNDATIONS | METHODS | COMPOSING, set(modules()) ^ (FOUNDATIONS | METHODS | COMPOSING)


def test_the_parser_sees_every_kind_of_import(tmp_path):
    f = tmp_path/'m.py'
    f.write_text("from .core import a\nimport diversification.data\nfrom diversification import ops as o\n"
                 "from . import models\ndef f():\n    from diversification.efficientseg import b\n    import os\n"
                 "class C:\n    def g(self):\n        from .sumix import c\n")
    assert {m for m, _ in package_imports(f)} == {'core', 'data', 'ops', 'models', 'efficientseg', 'sumix'}


@pytest.mark.parametrize('name', sorted(METHODS))
def test_a_method_imports_no_other_method(name):
    bad = sorted((m, line) for m, line in package_imports(modules()[name]) if m in (METHODS | COMPOSING) - {name})
    assert not bad, f"diversification/{name}.py imports method or composing modules (module, line): {bad}"


@pytest.mark.parametrize('name', sorted(FOUNDATIONS))
def test_a_foundation_imports_no_method_or_composing_module(name):
    bad = sorted((m, line) for m, line in package_imports(modules()[name]) if m in METHODS | COMPOSING)
    assert not bad, f"diversification/{name}.py imports method or composing modules (module, line): {bad}"
