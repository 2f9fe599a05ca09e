"""Real NVIDIA user space through the interposer, on the simulated 8 GiB card (an RTX 4060 stand-in).

Each scenario (scenarios.py) runs in its own process the way a container runs it: the shim laid out by
native/scripts/install-shim.sh (the node agent's layout), preloaded as /etc/ld.so.preload would, with the
environment the device plugin's Allocate gives: a 7.5 GiB VRAM share and a 28 GiB limit. The simulated
driver prints an `emuv-sim:` line for anything it does not know: any such line fails the test.
run.sh sets EMUV_REALSW_* (paths) before calling pytest.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GiB = 1 << 30
MiB = 1 << 20
SHARE = 7 * GiB + GiB // 2  # EMUV_VRAM_SHARE=7.5Gi
LIMIT = 28 * GiB  # EMUV_LIMIT_BYTES=28Gi
SIM_VRAM = 8 * GiB


def run(name, shim=True, env=None):
    """Runs one scenario; returns (result, stderr). Fails on a non-zero exit or an emuv-sim line."""
    with tempfile.TemporaryDirectory(prefix='emuv-realsw-') as tmp:
        e = {k: v for k, v in os.environ.items() if not k.startswith(('EMUV_', 'LD_', 'PYTORCH_', 'CUDA_'))}
        e.update({k: v for k, v in os.environ.items() if k.startswith('EMUV_REALSW_')})
        e['EMUV_SIM_VRAM'] = '8Gi'
        e['EMUV_SIM_STATE'] = os.path.join(tmp, 'sim-state')  # this run's simulated card, no other process on it
        if shim:
            lib = os.environ['EMUV_REALSW_SHIM_DIR']
            e.update({
                'LD_PRELOAD': f'{lib}/libemuv-cuda.so:{lib}/libemuv-nvml.so',
                'EMUV_CONTRACT_VERSION': '1',
                'EMUV_GPU': 'GPU-emuv-sim',
                'EMUV_VRAM_SHARE': str(SHARE),  # bytes, as the device plugin's Allocate writes them
                'EMUV_LIMIT_BYTES': str(LIMIT),
                'EMUV_STATS_FILE': os.path.join(tmp, 'stats.bin'),
            })
        else:
            e['LD_LIBRARY_PATH'] = os.environ['EMUV_REALSW_SIM_DIR']
        e.update(env or {})
        p = subprocess.run([sys.executable, os.path.join(HERE, 'scenarios.py'), name], env=e, capture_output=True,
                           text=True, timeout=600)
    sim_lines = [l for l in p.stderr.splitlines() if l.startswith('emuv-sim:')]
    assert p.returncode == 0, f'{name} exited {p.returncode}:\n{p.stderr[-4000:]}'
    assert sim_lines == [], f'{name}: the simulated driver was asked for something it does not know: {sim_lines}'
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def approx(a, b, tol):
    return abs(a - b) <= tol


# ---- cudart 12 and 13 ------------------------------------------------------------------------------

@pytest.fixture(scope='module', params=[12, 13])
def cudart(request):
    return run(f'cudart{request.param}')[0]


def test_cudart_sees_one_28gib_card(cudart):
    assert cudart['devices'] == 1
    assert cudart['totalGlobalMem'] == LIMIT
    assert cudart['meminfo'][1] == LIMIT
    assert cudart['cc'] == '8.9'
    assert 'simulated' in cudart['name']
    assert cudart['runtime_version'] // 1000 == cudart['major']


def test_cudart_holds_20gib_vram_first_then_host(cudart):
    held = cudart['after20']
    assert held['placement']['vram'] + held['placement']['host'] == 20 * GiB
    # VRAM first: everything up to the share (less the headroom kept for small allocations) is VRAM
    assert 6 * GiB <= held['placement']['vram'] <= SHARE
    assert held['placement']['host'] >= 20 * GiB - SHARE
    assert held['sim_vram_used'] >= held['placement']['vram']
    assert held['sim_vram_used'] <= SIM_VRAM
    assert held['meminfo'][0] <= LIMIT - 20 * GiB
    # 8 MiB written across the boundary of the one allocation that is part VRAM, part host, read back
    assert 0 < cudart['cross_copy']['vram_part'] < GiB
    assert cudart['cross_copy']['equal']


def test_cudart_refuses_past_the_limit(cudart):
    assert cudart['error'] == 2  # cudaErrorMemoryAllocation
    assert 20 + cudart['extra_before_error'] <= 28
    assert 20 + cudart['extra_before_error'] >= 27
    assert cudart['last_error_cleared']


def test_cudart_device_reset_gives_every_byte_back(cudart):
    # before the 7000 ABIs of cuDevicePrimaryCtxReset/Release were hooked, only 8 of 20 GiB came back
    free, total = cudart['after_reset']['meminfo']
    assert total == LIMIT
    assert free >= LIMIT - 64 * MiB  # at most the driver's own overhead
    assert cudart['after_reset']['sim_vram_used'] < 64 * MiB
    again = cudart['again20']['placement']
    assert again['vram'] + again['host'] == 20 * GiB and again['vram'] >= 6 * GiB
    assert cudart['after_free']['meminfo'][0] >= LIMIT - 64 * MiB


# ---- PyTorch -----------------------------------------------------------------------------------------

@pytest.fixture(scope='module', params=['default', 'expandable_segments:True'])
def torch_run(request):
    env = {} if request.param == 'default' else {'PYTORCH_CUDA_ALLOC_CONF': request.param}
    return run('torch', env=env)


def test_torch_sees_a_28gib_card(torch_run):
    t, _ = torch_run
    assert t['available']
    assert t['total_memory'] == LIMIT
    assert t['mem_get_info'][1] == LIMIT
    assert t['cc'] == '8.9'


def test_torch_holds_20gib_vram_first(torch_run):
    t, _ = torch_run
    held = t['held']
    assert held['memory_allocated'] == 20 * GiB
    assert held['placement']['vram'] + held['placement']['host'] == 20 * GiB
    assert 6 * GiB <= held['placement']['vram'] <= SHARE
    assert held['sim_vram_used'] <= SIM_VRAM
    assert held['mem_get_info'][0] <= LIMIT - 20 * GiB


def test_torch_oom_past_the_limit_and_still_usable(torch_run):
    t, _ = torch_run
    assert t['oom'] is not None and 'out of memory' in t['oom'].lower()
    assert t['copy_ok'] and t['spilled_copy_ok']
    assert t['stream_ok']


def test_torch_empty_cache_gives_everything_back(torch_run):
    t, _ = torch_run
    after = t['after_empty_cache']
    assert after['memory_reserved'] <= 64 * MiB
    assert after['mem_get_info'][0] >= LIMIT - 128 * MiB
    assert after['sim_vram_used'] <= 128 * MiB


def test_nvml_agrees_with_torch(torch_run):
    t, _ = torch_run
    n = t['nvml']
    assert 'error' not in n, n
    assert n['total'] == n['torch_total'] == LIMIT
    assert approx(n['used'], n['torch_used'], 64 * MiB)
    assert n['used'] >= 20 * GiB


# Warnings PyTorch may print on emuv, each explained in docs/interposer.md ("Real NVIDIA software"):
# deny-once refuses the first request that would spill, once, so the caching allocator frees its cache
# first; with expandable segments PyTorch reports that refusal. The fabric query is Hopper-only NVML, and
# PyTorch asks for it (and says so) on every pre-Hopper card when expandable segments are on.
EXPLAINED = {
    'deny-once': re.compile(r'expandable_segments: memory mapping failed with OOM'),
    'fabric': re.compile(r'nvmlDeviceGetGpuFabricInfoV failed\. This function is only supported on sm90\+'),
}


def test_torch_prints_no_unexplained_warning(torch_run):
    t, stderr = torch_run
    held, _, refused = stderr.partition('emuv-realsw: past the limit')
    lines = [l for l in held.splitlines() if l.startswith('[W') or 'Warning' in l] + t['warnings']
    unexplained = [l for l in lines if not any(r.search(l) for r in EXPLAINED.values())]
    assert unexplained == []
    deny = [l for l in lines if EXPLAINED['deny-once'].search(l)]
    if t['alloc_conf']:
        assert len(deny) <= 1  # once per process at most while 20 GiB are taken (5 s rate limit)
    else:
        assert deny == [] and lines == []  # the default allocator takes the refusal silently
    assert refused != '', 'the scenario did not reach the request past the limit'


# ---- PyTorch with the other spill backends (EMUV_SPILL_BACKEND, as Allocate sends the node's spillBackend) ----

@pytest.fixture(scope='module', params=['pinned', 'managed'])
def torch_backend(request):
    return run('torch_backend', env={'EMUV_SPILL_BACKEND': request.param})[0]


def test_torch_spill_backend_keeps_every_tensor_whole(torch_backend):
    t = torch_backend
    spilled_loc = 2 if t['backend'] == 'pinned' else 100  # zero-copy pinned host memory, or managed memory
    locs = t['held']['locations']
    assert t['held']['memory_allocated'] == 20 * GiB
    assert all(first == last for first, last in locs), locs  # never split between VRAM and RAM
    in_vram = sum(1 for first, _ in locs if first == 1)
    assert all(first in (1, spilled_loc) for first, _ in locs), locs
    # VRAM first: whole 1 GiB tensors up to share - headroom (7.5 GiB - 1.125 GiB), the rest whole in RAM
    assert in_vram == 6
    assert t['held']['sim_vram_used'] <= in_vram * GiB + 64 * MiB
    assert t['held']['mem_get_info'][0] <= LIMIT - 20 * GiB
    assert t['spilled_copy_ok']


def test_torch_managed_spill_is_advised_to_stay_in_host_ram(torch_backend):
    if torch_backend['backend'] != 'managed':
        assert 'advice' not in torch_backend  # pinned memory is not managed memory: nothing to advise
        return
    a = torch_backend['advice']
    assert a['results'] == [0, 0]
    assert a['preferred'] == -1  # CU_DEVICE_CPU
    assert a['accessed_by'] == [0, -2]  # device 0, then CU_DEVICE_INVALID


def test_torch_spill_backend_refuses_past_the_limit_and_gives_everything_back(torch_backend):
    t = torch_backend
    assert t['oom'] is not None and 'out of memory' in t['oom'].lower()
    assert t['after_empty_cache']['mem_get_info'][0] >= LIMIT - 128 * MiB
    assert t['after_empty_cache']['sim_vram_used'] <= 128 * MiB


def test_torch_without_the_shim_sees_the_physical_8gib():
    t, _ = run('torch_props', shim=False)
    assert t['available']
    assert t['total_memory'] == SIM_VRAM
    assert t['mem_get_info'][1] == SIM_VRAM
    assert t['cc'] == '8.9'


# ---- cuda-bindings, CuPy ----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def bindings():
    return run('bindings')[0]


def test_bindings_plain_20gib_split(bindings):
    assert bindings['total'] == LIMIT
    assert bindings['plain']['vram'] + bindings['plain']['host'] == 20 * GiB
    assert bindings['plain']['vram'] >= 6 * GiB
    assert bindings['after_plain_free'][0] >= LIMIT - 64 * MiB


def test_bindings_copy_across_the_split_and_interior_ranges(bindings):
    assert 0 < bindings['cross_copy']['vram_part'] < GiB
    assert bindings['cross_copy']['equal']
    assert bindings['range'] == {'base_ok': True, 'size': GiB, 'size2': GiB}


def test_bindings_vmm_20gib(bindings):
    vmm = bindings['vmm']
    assert vmm['placement']['vram'] + vmm['placement']['host'] == 20 * GiB
    assert vmm['placement']['vram'] >= 6 * GiB and vmm['placement']['host'] >= 20 * GiB - SHARE
    assert vmm['meminfo'][0] <= LIMIT - 20 * GiB
    assert vmm['cross_copy_equal']
    assert vmm['range'] == [2 * GiB, 2 * GiB]  # a mapping's range is the mapping, as on the driver
    assert bindings['after_vmm_free'][0] >= LIMIT - 64 * MiB


@pytest.fixture(scope='module')
def cupy_run():
    return run('cupy')[0]


def test_cupy_sees_28gib_and_holds_20(cupy_run):
    assert cupy_run['meminfo'][1] == LIMIT
    assert cupy_run['pool_used'] == 20 * GiB
    assert cupy_run['placement']['vram'] + cupy_run['placement']['host'] == 20 * GiB
    assert cupy_run['placement']['vram'] >= 6 * GiB


def test_cupy_oom_past_the_limit(cupy_run):
    assert cupy_run['oom'] is not None and 'out of memory' in cupy_run['oom'].lower()
    assert cupy_run['copy_ok']
    assert cupy_run['after_free']['pool_used'] == 0
    assert cupy_run['after_free']['meminfo'][0] >= LIMIT - 64 * MiB


# ---- the request lists behind test_replay --------------------------------------------------------

@pytest.mark.parametrize('major', [12, 13])
def test_cudart_request_list_matches_the_fixture(major, tmp_path):
    """The cuGetProcAddress requests the pinned cudart makes are the committed fixture that the native
    test_replay checks hook routing against: a new pin cannot slip past that check unrecorded."""
    rec = tmp_path / 'requests.tsv'
    e = {k: v for k, v in os.environ.items() if not k.startswith(('LD_', 'EMUV_'))}
    e.update({'LD_LIBRARY_PATH': os.environ['EMUV_REALSW_RECORDER_DIR'], 'EMUV_RECORD_GPA': str(rec),
              'EMUV_SIM_STATE': str(tmp_path / 'sim-state')})
    code = (f"import ctypes; rt = ctypes.CDLL({os.environ[f'EMUV_REALSW_CUDART{major}']!r}); "
            "n = ctypes.c_int(); assert rt.cudaGetDeviceCount(ctypes.byref(n)) == 0 and n.value == 1")
    p = subprocess.run([sys.executable, '-c', code], env=e, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    live = rec.read_text().splitlines()
    fixture = os.path.join(HERE, '..', 'fixtures', os.environ[f'EMUV_REALSW_FIXTURE{major}'])
    want = [l for l in open(fixture, encoding='utf-8').read().splitlines() if not l.startswith('#')]
    assert live == want
    assert len(live) > 300


# ---- emuv run: the same card without Kubernetes (docs/run.md) ------------------------------------------

ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))


def run_through_emuv(name):
    """Runs one scenario as `emuv run --limit 28Gi --driver-lib <simulated libcuda.so.1> -- python scenarios.py
    NAME`: emuv lays the interposer out, asks the simulated NVML for the card (8 GiB) and sets the contract
    itself. Returns (result, stderr, what the run left in its state and temporary directories)."""
    node = os.path.join(ROOT, 'node_modules', '.bin', 'node')
    if not os.path.exists(node):
        pytest.skip('no node_modules/.bin/node (npm ci) to run emuv from its sources')
    with tempfile.TemporaryDirectory(prefix='emuv-realsw-run-') as tmp:
        e = {k: v for k, v in os.environ.items() if not k.startswith(('EMUV_', 'LD_', 'PYTORCH_', 'CUDA_'))}
        e.update({k: v for k, v in os.environ.items() if k.startswith('EMUV_REALSW_')})
        e['EMUV_SIM_VRAM'] = '8Gi'
        e['EMUV_SIM_STATE'] = os.path.join(tmp, 'sim-state')
        e['TMPDIR'] = os.path.join(tmp, 'tmp')
        state = os.path.join(tmp, 'state')
        os.makedirs(e['TMPDIR'])
        cmd = [node, os.path.join(ROOT, 'plugin', 'main.ts'), 'run', '--limit', '28Gi',
               '--driver-lib', os.environ['EMUV_REALSW_SIM'], '--state-dir', state,
               '--', sys.executable, os.path.join(HERE, 'scenarios.py'), name]
        p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600)
        left = sorted(os.listdir(state) + os.listdir(e['TMPDIR']))
    sim_lines = [l for l in p.stderr.splitlines() if l.startswith('emuv-sim:')]
    assert p.returncode == 0, f'emuv run {name} exited {p.returncode}:\n{p.stderr[-4000:]}'
    assert sim_lines == [], f'{name}: the simulated driver was asked for something it does not know: {sim_lines}'
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr, left


def test_emuv_run_gives_torch_a_28gib_card_on_the_simulated_8gib_one():
    t, stderr, left = run_through_emuv('torch_emuv_run')
    assert t['available']
    assert t['total_memory'] == LIMIT
    assert t['mem_get_info'][1] == LIMIT
    assert t['cc'] == '8.9'
    # the share emuv run chose: the simulated card's 8 GiB (NVML) less the 512 MiB reserve
    c = t['contract']
    assert c['EMUV_LIMIT_BYTES'] == str(LIMIT) and c['EMUV_VRAM_SHARE'] == str(SHARE)
    assert c['EMUV_CONTRACT_VERSION'] == '1' and c['EMUV_GPU'].startswith('GPU-')
    assert re.search(r'/run-[0-9]+-[A-Za-z0-9]{6}/stats\.bin$', c['EMUV_STATS_FILE'])
    assert t['stats_file_size'] == 65536
    held = t['held']
    assert held['memory_allocated'] == 20 * GiB
    assert held['placement']['vram'] + held['placement']['host'] == 20 * GiB
    assert 6 * GiB <= held['placement']['vram'] <= SHARE
    assert held['mem_get_info'][0] <= LIMIT - 20 * GiB
    assert re.search(r'^emuv run: .* sees 28\.0 GiB on GPU-', stderr, re.M)
    assert left == []  # the private interposer directory and the stats directory are gone
