"""The package's structure, read with `ast` and never imported: layers, cycles, facades, private names, the bitsandbytes
backend, signature sizes and the notebooks' rhythm.

`HOUSE`, at the top of this file, is the one place the layer order is declared: floors, lowest first, each holding one or
more wings of modules. A module imports only from lower floors, or from its own wing on its own floor; a new module
must be given a room here before these tests pass. The checkers are plain functions of a folder (and the table), so the
tests at the bottom can prove, on a small fake package, that each one finds exactly what it should."""
import ast, json, re
from collections import namedtuple
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG, NBS = ROOT/'domain_tuner', ROOT/'nbs'

# ---- The house: floors, lowest first. A wing lists module names (file stems in domain_tuner/) separated by spaces. ----
Floor = namedtuple('Floor', 'number name holds wings')
HOUSE = [
    Floor(0, 'foundation', 'errors that say what/where/how to fix, hardware probes, precision, seeding, progress',
          {'foundation': 'core'}),
    Floor(1, 'plain data', 'plain Python: settings files, record formats, metric definitions with their direction, a safe calculator, '
                           'intervals, generated domain data',
          {'plain data': 'settings formats metrics intervals domains case_study tools'}),
    Floor(2, 'model files', 'tiny models built offline; the one resolver of model names (hub id, folder, GGUF, builtin:)',
          {'model files': 'tiny resolve'}),
    Floor(3, 'data pipeline and loading',
          'data pipeline: raw files to encoded examples with a tokenizer, no model. '
          'loading: loading models and tokenizers; the 4-bit backend (the only module that imports bitsandbytes)',
          {'data pipeline': 'load clean split augment template packing', 'loading': 'models quant'}),
    Floor(4, 'shared steps', 'the whole data step (may load a tokenizer by name); the loss on reference tokens, shared by '
                             'training and evaluation; the data facade',
          {'shared steps': 'prepare loss data'}),
    Floor(5, 'training and evaluation',
          'training: one training path for every method and stage; merging; GGUF export; curricula. '
          'evaluation: answers, perplexity, benchmarks, human review, expert comparison, reports; the evaluation facade',
          {'training': 'methods memory preference train merge export staged',
           'evaluation': 'generation likelihood benchmark human_eval expert report evaluate'}),
    Floor(6, 'built on both', 'the shipped base (pre-trained and probed); a settings file read into a checked plan',
          {'built on both': 'finance_base pairs plan'}),
    Floor(7, 'runs', 'a whole run from a plan', {'runs': 'run'}),
    Floor(8, 'faces', 'the notebook dashboard and the `domain-tuner` command', {'faces': 'dashboard cli'}),
]
FACADES = {'data', 'evaluate'}        # modules that re-export names for users: no module in the package imports them
BACKENDS = {'bitsandbytes': 'quant'}  # an optional dependency -> the one module allowed to import it
MAX_PUBLIC, MAX_PRIVATE = 8, 6        # named parameters, not counting self, cls, *args, **kwargs
MIN_FOLLOWED, MIN_OUTPUTS = 0.70, 0.35
PACKAGE = 'domain_tuner'              # the package root, as an import target (for `from domain_tuner import name`)

# ---- Reading the package ----
@dataclass(frozen=True)
class Import:
    "Module `src` imports `dst` (a package module, `PACKAGE`, or an outside module) at `line`, taking `names`."
    src: str; dst: str; line: int; names: tuple = ()

@dataclass
class Package:
    "What `ast` sees in a package folder: modules, imports inside it and outside it, private reads, function sizes."
    modules: list
    imports: list = field(default_factory=list)    # Import to a package module or to PACKAGE
    outside: list = field(default_factory=list)    # Import of any other module (bitsandbytes, torch, ...)
    reads: list = field(default_factory=list)      # (src, dst, '_name', line, 'alias._name') for `alias._name`
    functions: list = field(default_factory=list)  # (src, qualname, line, number of named parameters)

def module_files(folder):
    "The module files of the package in `folder`: every `*.py` but `__init__.py` and `_modidx.py`."
    return sorted(p for p in Path(folder).glob('*.py') if p.name not in ('__init__.py', '_modidx.py'))

def is_private(name):
    "A single-underscore name: `_x` and `__x` are private, dunders like `__version__` and `__init__` are not."
    return name.startswith('_') and not (name.startswith('__') and name.endswith('__'))

def _import_module_target(node):
    "The string literal given to `importlib.import_module('...')` or `import_module('...')`, else None."
    f = node.func if isinstance(node, ast.Call) else None
    named = (isinstance(f, ast.Attribute) and f.attr == 'import_module') or (isinstance(f, ast.Name) and f.id == 'import_module')
    if named and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value

def _internal(dotted):
    "The package module named by an absolute dotted name ('domain_tuner.x.y' -> 'x', 'domain_tuner' -> PACKAGE), else None."
    parts = dotted.split('.')
    if parts[0] != PACKAGE: return None
    return parts[1] if len(parts) > 1 else PACKAGE

def _from_package(src, node, modules):
    "Imports, and name bindings, of `from domain_tuner import a, b` or `from . import a, b`: a module when a file exists."
    found, bound = [], {}
    for a in node.names:
        if a.name in modules: found.append(Import(src, a.name, node.lineno)); bound[a.asname or a.name] = a.name
        elif not (a.name.startswith('__') and a.name.endswith('__')): found.append(Import(src, PACKAGE, node.lineno, (a.name,)))
    return found, bound

def _imports_of(src, node, modules):
    "The (inside, outside, bindings) of one import statement or `import_module` call in module `src`."
    if isinstance(node, ast.Import):
        inside, outside, bound = [], [], {}
        for a in node.names:
            dst = _internal(a.name)
            if dst is None: outside.append(Import(src, a.name, node.lineno)); continue
            if dst != PACKAGE: inside.append(Import(src, dst, node.lineno))
            bound[a.asname] = dst if a.asname else None
            if not a.asname: bound[PACKAGE] = PACKAGE
        return inside, outside, {k: v for k, v in bound.items() if k}
    if isinstance(node, ast.ImportFrom):
        if node.level > 1: return [], [], {}
        dotted = ('' if node.level == 0 else PACKAGE + ('.' if node.module else '')) + (node.module or '')
        dst = _internal(dotted)
        if dst is None: return [], [Import(src, dotted, node.lineno)], {}
        if dst == PACKAGE:
            inside, bound = _from_package(src, node, modules)
            return inside, [], bound
        return [Import(src, dst, node.lineno, tuple(a.name for a in node.names))], [], {}
    target = _import_module_target(node)
    if target is None or target.startswith('.'): return [], [], {}
    dst = _internal(target)
    if dst is None: return [], [Import(src, target, node.lineno)], {}
    return ([] if dst == PACKAGE else [Import(src, dst, node.lineno)]), [], {}

def _named_parameters(fn):
    "How many named parameters `fn` takes: positional-only, positional and keyword-only, less `self` and `cls`."
    a = fn.args
    return sum(p.arg not in ('self', 'cls') for p in a.posonlyargs + a.args + a.kwonlyargs)

def _functions(node, prefix=''):
    "Every (qualname, def) under `node`: methods and functions nested in functions included."
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + child.name, child
            yield from _functions(child, f'{prefix}{child.name}.')
        elif isinstance(child, ast.ClassDef): yield from _functions(child, f'{prefix}{child.name}.')
        else: yield from _functions(child, prefix)

def _module_of(expr, bound):
    "The package module an expression stands for: a bound alias, `domain_tuner.x`, or `import_module('domain_tuner.x')`."
    if isinstance(expr, ast.Name): return bound.get(expr.id)
    if isinstance(expr, ast.Attribute) and _module_of(expr.value, bound) == PACKAGE: return expr.attr
    target = _import_module_target(expr)
    return _internal(target) if target else None

def _private_reads(src, tree, bound):
    "Every `alias._name` in `tree` where `alias` stands for a module of the package."
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            dst = _module_of(node.value, bound)
            if dst: yield src, dst, node.attr, node.lineno, ast.unparse(node)

def read_package(folder):
    "Parse every module file in `folder` with `ast`; collect every import (lazy ones included), private read and function."
    files = module_files(folder)
    pkg = Package(modules=[p.stem for p in files])
    for path in files:
        src, tree = path.stem, ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
        bound = {}
        for node in ast.walk(tree):
            inside, outside, names = _imports_of(src, node, pkg.modules)
            pkg.imports += inside; pkg.outside += outside; bound.update(names)
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                target = _import_module_target(node.value)
                if target and _internal(target): bound[node.targets[0].id] = _internal(target)
        pkg.reads += list(_private_reads(src, tree, bound))
        pkg.functions += [(src, q, fn.lineno, _named_parameters(fn)) for q, fn in _functions(tree)]
    pkg.imports.sort(key=lambda i: (i.src, i.line, i.dst))
    return pkg

@lru_cache(maxsize=None)
def real_package():
    "The real package, read once per test session."
    return read_package(PKG)

# ---- The checks: each returns a list of violations, empty when the package is in order ----
def rooms(house):
    "Map each module in `house` to its (floor number, wing name)."
    return {m: (f.number, wing) for f in house for wing, mods in f.wings.items() for m in mods.split()}

def show(i):
    "An import as a reader wants it in a failure: `module -> imported module (line N)`."
    return f'{i.src} -> {i.dst} (line {i.line})'

def table_problems(folder, house):
    "Modules with no room in the table, modules listed twice, and rooms whose module has no file."
    listed = [m for f in house for mods in f.wings.values() for m in mods.split()]
    files = {p.stem for p in module_files(folder)}
    return ([f'{m}: {m}.py has no room in the table' for m in sorted(files - set(listed))]
          + [f'{m}: listed {listed.count(m)} times in the table' for m in sorted(set(listed)) if listed.count(m) > 1]
          + [f'{m}: in the table but {m}.py does not exist' for m in sorted(set(listed) - files)])

def layer_violations(pkg, house):
    "Imports of a higher floor, or of another wing on the same floor (modules missing from the table are skipped)."
    where, out = rooms(house), []
    for i in pkg.imports:
        if i.src not in where or i.dst not in where or i.src == i.dst: continue
        (fs, ws), (fd, wd) = where[i.src], where[i.dst]
        if fd > fs: out.append(f'{show(i)}: up from floor {fs} {ws} to floor {fd} {wd}')
        elif fd == fs and wd != ws: out.append(f'{show(i)}: across floor {fs}, wing {ws} to wing {wd}')
    return out

def _graph(pkg):
    "The import graph between package modules: {src: {dst: first line}}."
    g = {m: {} for m in pkg.modules}
    for i in pkg.imports:
        if i.dst != PACKAGE: g.setdefault(i.src, {}).setdefault(i.dst, i.line); g.setdefault(i.dst, {})
    return g

def strongly_connected(g):
    "Tarjan's strongly connected components of graph `g`, each a sorted list."
    index, low, stack, on, comps = {}, {}, [], set(), []
    def _visit(v):
        "Number `v`, visit what it imports, and close a component when `v` is its root."
        index[v] = low[v] = len(index); stack.append(v); on.add(v)
        for w in sorted(g[v]):
            if w not in index: _visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v: comp.append(stack.pop()); on.discard(comp[-1])
            comps.append(sorted(comp))
    for v in sorted(g):
        if v not in index: _visit(v)
    return comps

def _a_cycle(g, comp):
    "One shortest cycle through the first module of component `comp`, as a list of modules ending where it starts."
    start, inside = comp[0], set(comp)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(g[path[-1]]):
            if w == start: return path + [start]
            if w in inside and w not in seen: seen.add(w); paths.append(path + [w])

def cycles(pkg):
    "Each import cycle, as its modules and one concrete loop with the line of every import in it."
    g, out = _graph(pkg), []
    for comp in strongly_connected(g):
        if len(comp) == 1 and comp[0] not in g[comp[0]]: continue
        loop = _a_cycle(g, comp)
        steps = ' -> '.join(f'{b} (line {g[a][b]})' for a, b in zip(loop, loop[1:]))
        out.append(f"cycle among {', '.join(comp)}: {loop[0]} -> {steps}")
    return out

def facade_imports(pkg, facades):
    "Imports of a facade, or of a non-dunder name from the package root (which re-exports the public API)."
    return ([show(i) for i in pkg.imports if i.dst in facades]
          + [f'{i.src} -> {PACKAGE}.{n} (line {i.line})' for i in pkg.imports if i.dst == PACKAGE for n in i.names])

def private_uses(pkg):
    "Private names imported from another module (`from .x import _y`) or read from one (`alias._y`)."
    imported = [f'{i.src} -> {i.dst}.{n} (line {i.line})' for i in pkg.imports if i.src != i.dst
                for n in i.names if is_private(n)]
    read = [f'{s} -> {d}.{n} (line {line}, read as {text})' for s, d, n, line, text in pkg.reads if s != d]
    return imported + read

def backend_imports(pkg, backends):
    "Imports of an optional backend from any module but the one allowed to import it."
    return [show(i) for i in pkg.outside for dep, home in backends.items()
            if (i.dst == dep or i.dst.startswith(dep + '.')) and i.src != home]

def long_signatures(pkg, max_public=MAX_PUBLIC, max_private=MAX_PRIVATE):
    "Functions and methods with more named parameters than allowed (public and private limits differ)."
    out = []
    for src, qual, line, n in pkg.functions:
        limit = max_private if is_private(qual.split('.')[-1]) else max_public
        if n > limit: out.append(f'{src}.{qual} (line {line}): {n} named parameters, limit {limit}')
    return out

# ---- Notebook rhythm ----
EXPORT, HIDE = re.compile(r'#\|\s*export[is]?(\s|$)'), re.compile(r'#\|\s*hide(\s|$)')

def _source(cell):
    "A cell's source as one string, leading whitespace removed."
    s = cell.get('source', '')
    return (''.join(s) if isinstance(s, list) else s).lstrip()

def _exported(cell):
    "Is `cell` an exported code cell?"
    return cell['cell_type'] == 'code' and bool(EXPORT.match(_source(cell)))

def _shows(cell):
    "Does `cell` show the reader something: markdown, or a code cell neither exported nor hidden?"
    if cell['cell_type'] == 'markdown': return True
    return cell['cell_type'] == 'code' and not _exported(cell) and not HIDE.match(_source(cell))

def notebook_rhythm(folder):
    "Per library notebook in `folder` (not index.ipynb, not subfolders): (exported cells followed by a shown cell, exported, code cells with outputs, code cells)."
    out = {}
    for nb in sorted(Path(folder).glob('*.ipynb')):
        if nb.name == 'index.ipynb': continue
        cells = json.loads(nb.read_text(encoding='utf-8'))['cells']
        exported = [k for k, c in enumerate(cells) if _exported(c)]
        code = [c for c in cells if c['cell_type'] == 'code']
        out[nb.name] = (sum(k + 1 < len(cells) and _shows(cells[k + 1]) for k in exported), len(exported),
                        sum(bool(c.get('outputs')) for c in code), len(code))
    return out

def _ratio(a, b):
    "a/b, or 1 when there is nothing to count."
    return a / b if b else 1.0

def _lowest(rhythm, i):
    "The 5 notebooks with the lowest ratio `i` (0: exported cells followed, 1: outputs kept), as `name a/b`."
    worst = sorted(rhythm, key=lambda n: _ratio(rhythm[n][2*i], rhythm[n][2*i + 1]))[:5]
    return ', '.join(f'{n} {rhythm[n][2*i]}/{rhythm[n][2*i + 1]}' for n in worst)

def rhythm_problems(rhythm, min_followed=MIN_FOLLOWED, min_outputs=MIN_OUTPUTS):
    "A message when too few exported cells are followed by something shown, or too few code cells keep outputs; else ''."
    followed = _ratio(sum(r[0] for r in rhythm.values()), sum(r[1] for r in rhythm.values()))
    outputs = _ratio(sum(r[2] for r in rhythm.values()), sum(r[3] for r in rhythm.values()))
    if followed >= min_followed and outputs >= min_outputs: return ''
    return (f'exported cells followed by markdown or a visible cell: {followed:.0%} (need {min_followed:.0%}); '
            f'lowest: {_lowest(rhythm, 0)}\n'
            f'code cells keeping outputs: {outputs:.0%} (need {min_outputs:.0%}); lowest: {_lowest(rhythm, 1)}')

# ---- The real package ----
def _fail(title, problems):
    "An assertion message listing every problem, one a line."
    return f'{title} ({len(problems)}):\n  ' + '\n  '.join(problems)

def test_every_module_has_one_room():
    problems = table_problems(PKG, HOUSE)
    assert not problems, _fail('modules and the table disagree', problems)

def test_imports_go_down_or_stay_in_the_wing():
    problems = layer_violations(real_package(), HOUSE)
    assert not problems, _fail('imports of a higher floor or of another wing', problems)

def test_no_import_cycles():
    problems = cycles(real_package())
    assert not problems, _fail('import cycles', problems)

def test_no_module_imports_a_facade():
    problems = facade_imports(real_package(), FACADES)
    assert not problems, _fail(f'imports of a facade {sorted(FACADES)} or of the package root', problems)

def test_no_private_names_cross_modules():
    problems = private_uses(real_package())
    assert not problems, _fail('private names used from another module', problems)

def test_only_quant_imports_bitsandbytes():
    problems = backend_imports(real_package(), BACKENDS)
    assert not problems, _fail('optional backends imported outside their module', problems)

def test_signatures_are_short():
    problems = long_signatures(real_package())
    assert not problems, _fail(f'signatures over {MAX_PUBLIC} (public) or {MAX_PRIVATE} (private) named parameters', problems)

def test_notebooks_show_what_they_export():
    problem = rhythm_problems(notebook_rhythm(NBS))
    assert not problem, problem

# ---- The checks can fail: a small fake package with one of each problem ----
FAKE = {
    'core.py':    'import os\n\ndef fine(a, b, c, d, e, f, g, h): pass\n',
    'settings.py': 'from .core import fine\n\ndef _helper(a, b, c, d, e, f, g): pass\n',
    'models.py':  ('from . import core as C\nimport bitsandbytes.nn\n\n'
                   'def load():\n    from domain_tuner.train import fit\n    return C._secret\n'),
    'quant.py':   'import bitsandbytes as bnb\nfrom .models import load\n',
    'train.py':   ('from .models import load\nfrom .core import _private\n\n'
                   'class Trainer:\n    def step(self, a, b, c, d, e, f, g, h, i): pass\n'),
    'evaluate.py': 'import importlib\nM = importlib.import_module("domain_tuner.train")\n',
    'report.py':  'from domain_tuner import __version__, evaluate\n\ndef _ok(self, a, b, c, d, e, f, *args, **kw): pass\n',
    'extra.py':   '',
}
FAKE_HOUSE = [
    Floor(0, 'foundation', 'core', {'foundation': 'core'}),
    Floor(1, 'plain data', 'settings', {'plain data': 'settings'}),
    Floor(3, 'loading', 'models', {'loading': 'models quant'}),
    Floor(5, 'work', 'train and evaluate', {'training': 'train', 'evaluation': 'evaluate report'}),
    Floor(6, 'gone', 'a module with no file', {'gone': 'missing'}),
]

def _fake(tmp_path):
    "Write the fake package into `tmp_path` and read it."
    for name, text in {**FAKE, '__init__.py': '', '_modidx.py': 'd = {}\n'}.items(): (tmp_path/name).write_text(text)
    return read_package(tmp_path)

def test_fake_table(tmp_path):
    _fake(tmp_path)
    assert table_problems(tmp_path, FAKE_HOUSE) == ['extra: extra.py has no room in the table',
                                                    'missing: in the table but missing.py does not exist']
    assert table_problems(tmp_path, FAKE_HOUSE + [Floor(9, 'again', 'x', {'again': 'core extra'})]) == [
        'core: listed 2 times in the table', 'missing: in the table but missing.py does not exist']

def test_fake_layers(tmp_path):
    assert layer_violations(_fake(tmp_path), FAKE_HOUSE) == [
        'evaluate -> train (line 2): across floor 5, wing evaluation to wing training',
        'models -> train (line 5): up from floor 3 loading to floor 5 training']

def test_fake_cycles(tmp_path):
    assert cycles(_fake(tmp_path)) == ['cycle among models, train: models -> train (line 5) -> models (line 1)']

def test_fake_facades(tmp_path):
    assert facade_imports(_fake(tmp_path), {'evaluate'}) == ['report -> evaluate (line 1)']

def test_fake_private_names(tmp_path):
    assert private_uses(_fake(tmp_path)) == ['train -> core._private (line 2)',
                                            'models -> core._secret (line 6, read as C._secret)']

def test_fake_backend(tmp_path):
    assert backend_imports(_fake(tmp_path), BACKENDS) == ['models -> bitsandbytes.nn (line 2)']

def test_fake_signatures(tmp_path):
    assert long_signatures(_fake(tmp_path)) == ['settings._helper (line 3): 7 named parameters, limit 6',
                                                'train.Trainer.step (line 5): 9 named parameters, limit 8']

def _cell(kind, text, outputs=None):
    "A notebook cell of `kind` with source `text` (code cells get `outputs`)."
    return {'cell_type': kind, 'source': text, **({'outputs': outputs or []} if kind == 'code' else {})}

def test_fake_rhythm(tmp_path):
    good = [_cell('markdown', '# Good'), _cell('code', '#| export\ndef f(): pass'), _cell('code', 'f()', ['out']),
            _cell('code', '#|exporti\ndef _g(): pass'), _cell('markdown', 'g is private')]
    bad = [_cell('code', '#| export\nx = 1'), _cell('code', '#| exports\ny = 2'), _cell('code', '#| hide\nimport nbdev')]
    for name, cells in {'00_good.ipynb': good, '01_bad.ipynb': bad, 'index.ipynb': bad}.items():
        (tmp_path/name).write_text(json.dumps({'cells': cells}))
    (tmp_path/'tutorials').mkdir(); (tmp_path/'tutorials'/'t.ipynb').write_text(json.dumps({'cells': bad}))
    rhythm = notebook_rhythm(tmp_path)
    assert rhythm == {'00_good.ipynb': (2, 2, 1, 3), '01_bad.ipynb': (0, 2, 0, 3)}
    assert rhythm_problems(rhythm) == ('exported cells followed by markdown or a visible cell: 50% (need 70%); '
                                       'lowest: 01_bad.ipynb 0/2, 00_good.ipynb 2/2\n'
                                       'code cells keeping outputs: 17% (need 35%); lowest: 01_bad.ipynb 0/3, 00_good.ipynb 1/3')
    assert rhythm_problems(rhythm, min_followed=0.5, min_outputs=0.1) == ''
