"""Workloads of real NVIDIA user space, run by test_realsw.py in a fresh process each (the interposer is
preloaded at process start, as in a container). Each prints one JSON object on its last stdout line:
what the software saw, and where the simulated driver put the memory. Assertions live in the tests.

Usage: python scenarios.py NAME [ARG]
Environment: EMUV_REALSW_SIM (the simulated libcuda.so.1, for placement read-back), EMUV_REALSW_CUDART12/13
(the pinned libcudart paths), plus whatever EMUV_* / LD_PRELOAD the test sets.
"""
import ctypes
import json
import os
import sys
import warnings

GiB = 1 << 30
MiB = 1 << 20
# CU_MEM_LOCATION_TYPE_* as the simulated driver reports them (emuv_sim_location); 100 is managed.
LOC_DEVICE, LOC_HOST, LOC_HOST_NUMA, LOC_MANAGED = 1, 2, 3, 100


def sim():
    """The simulated driver already loaded in this process (the same file, so the same handle)."""
    return ctypes.CDLL(os.environ['EMUV_REALSW_SIM'])


def sim_vram_used():
    s = sim()
    s.emuv_sim_vram_used.restype = ctypes.c_uint64
    return s.emuv_sim_vram_used()


def split_of(ptr, size):
    """(VRAM bytes, host bytes) of one allocation, read from the simulated driver page by page at 2 MiB
    steps: emuv places a split allocation VRAM first, host after, so the boundary is found by bisection
    and both sides are checked to be what they claim."""
    s = sim()
    s.emuv_sim_location.restype = ctypes.c_int
    s.emuv_sim_location.argtypes = [ctypes.c_uint64]

    def loc(off):
        return s.emuv_sim_location(ptr + off)

    def is_host(x):
        return x in (LOC_HOST, LOC_HOST_NUMA)

    first, last = loc(0), loc(size - 1)
    if first == LOC_DEVICE and last == LOC_DEVICE:
        return size, 0
    if is_host(first) and is_host(last):
        return 0, size
    if not (first == LOC_DEVICE and is_host(last)):
        raise AssertionError(f'unexpected placement {first}..{last} at {ptr:#x}+{size}')
    lo, hi = 0, size // (2 * MiB)  # granule lo is VRAM, granule hi - 1 ... is host
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if loc(mid * 2 * MiB) == LOC_DEVICE:
            lo = mid
        else:
            hi = mid
    boundary = hi * 2 * MiB
    assert loc(boundary - 1) == LOC_DEVICE and is_host(loc(boundary)), 'boundary not where bisection says'
    return boundary, size - boundary


def split_allocation(ptrs, size):
    """The allocation that is part VRAM, part host, and its (VRAM bytes, host bytes)."""
    for p in ptrs:
        v, h = split_of(p, size)
        if v and h:
            return p, (v, h)
    raise AssertionError('no allocation is split between VRAM and host')


def placement(allocs):
    v = h = 0
    for ptr, size in allocs:
        a, b = split_of(ptr, size)
        v += a
        h += b
    return {'vram': v, 'host': h}


# ---- cudart through ctypes -------------------------------------------------------------------------

def cudart(major):
    rt = ctypes.CDLL(os.environ[f'EMUV_REALSW_CUDART{major}'])
    c_size = ctypes.c_size_t
    out = {'major': major}

    def check(name, r):
        if r != 0:
            raise RuntimeError(f'{name} returned {r}')

    n = ctypes.c_int(-1)
    check('cudaGetDeviceCount', rt.cudaGetDeviceCount(ctypes.byref(n)))
    out['devices'] = n.value
    ver = ctypes.c_int(0)
    check('cudaRuntimeGetVersion', rt.cudaRuntimeGetVersion(ctypes.byref(ver)))
    out['runtime_version'] = ver.value
    prop = ctypes.create_string_buffer(8192)
    # cudart 12 keeps the pre-12 symbol for old binaries; the header maps cudaGetDeviceProperties to _v2.
    getprop = rt.cudaGetDeviceProperties_v2 if major == 12 else rt.cudaGetDeviceProperties
    check('cudaGetDeviceProperties', getprop(prop, 0))
    out['name'] = prop.raw[:256].split(b'\0')[0].decode()
    # cudaDeviceProp starts name[256], cudaUUID_t uuid (16), char luid[8], unsigned luidDeviceNodeMask,
    # then size_t totalGlobalMem at offset 288 (4 bytes of padding), in CUDA 12 and 13 alike.
    out['totalGlobalMem'] = c_size.from_buffer(prop, 288).value
    cc = [ctypes.c_int(), ctypes.c_int()]
    check('cudaDeviceGetAttribute', rt.cudaDeviceGetAttribute(ctypes.byref(cc[0]), 75, 0))  # ComputeCapabilityMajor
    check('cudaDeviceGetAttribute', rt.cudaDeviceGetAttribute(ctypes.byref(cc[1]), 76, 0))  # ComputeCapabilityMinor
    out['cc'] = f'{cc[0].value}.{cc[1].value}'

    def meminfo():
        f, t = c_size(), c_size()
        check('cudaMemGetInfo', rt.cudaMemGetInfo(ctypes.byref(f), ctypes.byref(t)))
        return f.value, t.value

    out['meminfo'] = meminfo()

    def malloc_n(count):
        ptrs = []
        for _ in range(count):
            p = ctypes.c_void_p()
            check('cudaMalloc', rt.cudaMalloc(ctypes.byref(p), c_size(GiB)))
            ptrs.append(p.value)
        return ptrs

    ptrs = malloc_n(20)
    out['after20'] = {'meminfo': meminfo(), 'placement': placement([(p, GiB) for p in ptrs]),
                      'sim_vram_used': sim_vram_used()}
    # data written across the VRAM/host boundary of the split allocation reads back
    p, (v, _h) = split_allocation(ptrs, GiB)
    n = 8 * MiB
    src = (ctypes.c_ubyte * n).from_buffer_copy(bytes(i * 7 % 251 for i in range(n)))
    back = (ctypes.c_ubyte * n)()
    at = ctypes.c_void_p(p + v - n // 2)
    check('cudaMemcpy', rt.cudaMemcpy(at, src, c_size(n), 1))  # HostToDevice
    check('cudaMemcpy', rt.cudaMemcpy(back, at, c_size(n), 2))  # DeviceToHost
    out['cross_copy'] = {'vram_part': v, 'equal': bytes(back) == bytes(src)}
    # past the limit: 1 GiB at a time until the runtime says no
    extra, err = 0, 0
    while extra < 40:
        p = ctypes.c_void_p()
        err = rt.cudaMalloc(ctypes.byref(p), c_size(GiB))
        if err != 0:
            break
        extra += 1
    out['extra_before_error'] = extra
    out['error'] = err
    out['last_error_cleared'] = rt.cudaGetLastError() == err and rt.cudaGetLastError() == 0
    check('cudaDeviceReset', rt.cudaDeviceReset())
    out['after_reset'] = {'meminfo': meminfo(), 'sim_vram_used': sim_vram_used()}
    ptrs = malloc_n(20)
    out['again20'] = {'meminfo': meminfo(), 'placement': placement([(p, GiB) for p in ptrs])}
    for p in ptrs:
        check('cudaFree', rt.cudaFree(ctypes.c_void_p(p)))
    out['after_free'] = {'meminfo': meminfo()}
    return out


# ---- PyTorch --------------------------------------------------------------------------------------

def torch_scenario(_arg=None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        import torch

        out = {'alloc_conf': os.environ.get('PYTORCH_CUDA_ALLOC_CONF', '')}
        out['available'] = torch.cuda.is_available()
        p = torch.cuda.get_device_properties(0)
        out['name'] = p.name
        out['total_memory'] = p.total_memory
        out['cc'] = f'{p.major}.{p.minor}'
        out['mem_get_info'] = list(torch.cuda.mem_get_info())
        ts = [torch.empty(GiB, dtype=torch.uint8, device='cuda') for _ in range(20)]
        out['held'] = {
            'memory_allocated': torch.cuda.memory_allocated(),
            'mem_get_info': list(torch.cuda.mem_get_info()),
            'placement': placement([(t.data_ptr(), GiB) for t in ts]),
            'sim_vram_used': sim_vram_used(),
        }
        try:
            import pynvml
            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(0)
            mi = pynvml.nvmlDeviceGetMemoryInfo(h)
            free, total = torch.cuda.mem_get_info()
            out['nvml'] = {'total': mi.total, 'used': mi.used, 'torch_total': total, 'torch_used': total - free,
                           'name': pynvml.nvmlDeviceGetName(h)}
            pynvml.nvmlShutdown()
        except Exception as e:  # reported, and the test fails on it
            out['nvml'] = {'error': repr(e)}
        # what PyTorch prints from here on belongs to the refused request, not to the 20 GiB held
        sys.stderr.write('emuv-realsw: past the limit\n')
        sys.stderr.flush()
        try:
            torch.empty(10 * GiB, dtype=torch.uint8, device='cuda')
            out['oom'] = None
        except torch.OutOfMemoryError as e:
            out['oom'] = str(e).splitlines()[0]
        # still usable after the OOM: copies both ways, into a tensor in host-backed memory too
        x = torch.arange(1 << 20, dtype=torch.int64)
        y = x.cuda()
        out['copy_ok'] = bool(torch.equal(y.cpu(), x))
        tail = ts[-1][: 1 << 20]
        tail.copy_(torch.full((1 << 20,), 5, dtype=torch.uint8))
        out['spilled_copy_ok'] = bool(torch.equal(tail.cpu(), torch.full((1 << 20,), 5, dtype=torch.uint8)))
        s = torch.cuda.Stream()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(s):
            start.record(s)
            z = x.to('cuda', non_blocking=True)
            end.record(s)
        end.synchronize()
        s.synchronize()
        torch.cuda.synchronize()
        out['stream_ok'] = bool(torch.equal(z.cpu(), x)) and start.elapsed_time(end) >= 0
        del ts, y, z, tail
        torch.cuda.empty_cache()
        out['after_empty_cache'] = {
            'memory_allocated': torch.cuda.memory_allocated(),
            'memory_reserved': torch.cuda.memory_reserved(),
            'mem_get_info': list(torch.cuda.mem_get_info()),
            'sim_vram_used': sim_vram_used(),
        }
    out['warnings'] = [str(w.message).splitlines()[0] for w in caught]
    return out


def torch_backend_scenario(_arg=None):
    """PyTorch's default allocator under EMUV_SPILL_BACKEND=pinned or managed: where each tensor landed
    (first and last byte), the advice the managed memory carries, copies into spilled memory, the refusal
    past the limit and everything back after empty_cache."""
    import torch

    s = sim()
    s.emuv_sim_location.restype = ctypes.c_int
    s.emuv_sim_location.argtypes = [ctypes.c_uint64]
    out = {'backend': os.environ.get('EMUV_SPILL_BACKEND', '')}
    ts = [torch.empty(GiB, dtype=torch.uint8, device='cuda') for _ in range(20)]
    out['held'] = {
        'memory_allocated': torch.cuda.memory_allocated(),
        'locations': [[s.emuv_sim_location(t.data_ptr()), s.emuv_sim_location(t.data_ptr() + GiB - 1)] for t in ts],
        'sim_vram_used': sim_vram_used(),
        'mem_get_info': list(torch.cuda.mem_get_info()),
    }
    spilled = [t for t in ts if s.emuv_sim_location(t.data_ptr()) != LOC_DEVICE]
    if spilled and out['backend'] == 'managed':
        # cuMemRangeGetAttribute is not hooked: the simulated driver answers with the advice it recorded
        pref, acc = ctypes.c_int(99), (ctypes.c_int * 2)(99, 99)
        r1 = s.cuMemRangeGetAttribute(ctypes.byref(pref), ctypes.c_size_t(4), 2, ctypes.c_uint64(spilled[0].data_ptr()),
                                      ctypes.c_size_t(GiB))  # PREFERRED_LOCATION
        r2 = s.cuMemRangeGetAttribute(acc, ctypes.c_size_t(8), 3, ctypes.c_uint64(spilled[0].data_ptr()),
                                      ctypes.c_size_t(GiB))  # ACCESSED_BY
        out['advice'] = {'results': [r1, r2], 'preferred': pref.value, 'accessed_by': list(acc)}
    if spilled:
        part = spilled[-1][GiB - (1 << 20):]
        part.copy_(torch.full((1 << 20,), 7, dtype=torch.uint8))
        out['spilled_copy_ok'] = bool(torch.equal(part.cpu(), torch.full((1 << 20,), 7, dtype=torch.uint8)))
        del part
    try:
        torch.empty(10 * GiB, dtype=torch.uint8, device='cuda')
        out['oom'] = None
    except torch.OutOfMemoryError as e:
        out['oom'] = str(e).splitlines()[0]
    del ts, spilled
    torch.cuda.empty_cache()
    out['after_empty_cache'] = {'mem_get_info': list(torch.cuda.mem_get_info()), 'sim_vram_used': sim_vram_used()}
    return out


# ---- cuda-bindings (NVIDIA's Python driver API) ---------------------------------------------------

def bindings_scenario(_arg=None):
    import numpy as np
    from cuda.bindings import driver as cu

    def ok(res):
        err, *vals = res if isinstance(res, tuple) else (res,)
        if err != cu.CUresult.CUDA_SUCCESS:
            raise RuntimeError(f'{err}')
        return vals[0] if len(vals) == 1 else vals

    ok(cu.cuInit(0))
    dev = ok(cu.cuDeviceGet(0))
    ctx = ok(cu.cuDevicePrimaryCtxRetain(dev))
    ok(cu.cuCtxSetCurrent(ctx))
    out = {'total': ok(cu.cuDeviceTotalMem(dev)), 'meminfo': list(ok(cu.cuMemGetInfo()))}
    # plain: 20 x 1 GiB
    plain = [int(ok(cu.cuMemAlloc(GiB))) for _ in range(20)]
    out['plain'] = placement([(p, GiB) for p in plain])
    # a copy that crosses the VRAM/host boundary of a split allocation reads back
    p, (v, _h) = split_allocation(plain, GiB)
    start = max(v - 8 * MiB, 0)
    src = np.arange(16 * MiB // 8, dtype=np.uint64)
    dst = np.zeros_like(src)
    ok(cu.cuMemcpyHtoD(p + start, src.ctypes.data, src.nbytes))
    ok(cu.cuMemcpyDtoH(dst.ctypes.data, p + start, src.nbytes))
    out['cross_copy'] = {'offset': start, 'vram_part': v, 'equal': bool((src == dst).all())}
    # interior pointer lookups, in the VRAM part and the host part of the same allocation
    base, size = ok(cu.cuMemGetAddressRange(p + GiB - 4096))
    base2, size2 = ok(cu.cuMemGetAddressRange(p + 4096))
    out['range'] = {'base_ok': int(base) == p and int(base2) == p, 'size': int(size), 'size2': int(size2)}
    for q in plain:
        ok(cu.cuMemFree(q))
    out['after_plain_free'] = list(ok(cu.cuMemGetInfo()))
    # VMM: one 20 GiB range, ten 2 GiB device handles mapped into it
    prop = cu.CUmemAllocationProp()
    prop.type = cu.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
    prop.location.type = cu.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
    prop.location.id = 0
    gran = ok(cu.cuMemGetAllocationGranularity(prop, cu.CUmemAllocationGranularity_flags.CU_MEM_ALLOC_GRANULARITY_MINIMUM))
    va = int(ok(cu.cuMemAddressReserve(20 * GiB, 0, 0, 0)))
    handles = []
    for i in range(10):
        h = ok(cu.cuMemCreate(2 * GiB, prop, 0))
        handles.append(h)
        ok(cu.cuMemMap(va + i * 2 * GiB, 2 * GiB, 0, h, 0))
    acc = cu.CUmemAccessDesc()
    acc.location.type = cu.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
    acc.location.id = 0
    acc.flags = cu.CUmemAccess_flags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE
    ok(cu.cuMemSetAccess(va, 20 * GiB, [acc], 1))
    out['vmm'] = {'granularity': int(gran), 'placement': placement([(va + i * 2 * GiB, 2 * GiB) for i in range(10)]),
                  'meminfo': list(ok(cu.cuMemGetInfo()))}
    # a copy across two mappings (the last VRAM-backed one and the first host-backed one, if any)
    ok(cu.cuMemcpyHtoD(va + 2 * GiB - 8 * MiB, src.ctypes.data, src.nbytes))
    dst[:] = 0
    ok(cu.cuMemcpyDtoH(dst.ctypes.data, va + 2 * GiB - 8 * MiB, src.nbytes))
    out['vmm']['cross_copy_equal'] = bool((src == dst).all())
    b, sz = ok(cu.cuMemGetAddressRange(va + 2 * GiB + 12345))
    out['vmm']['range'] = [int(b) - va, int(sz)]
    for i, h in enumerate(handles):
        ok(cu.cuMemUnmap(va + i * 2 * GiB, 2 * GiB))
        ok(cu.cuMemRelease(h))
    ok(cu.cuMemAddressFree(va, 20 * GiB))
    out['after_vmm_free'] = list(ok(cu.cuMemGetInfo()))
    ok(cu.cuDevicePrimaryCtxRelease(dev))
    return out


# ---- CuPy -------------------------------------------------------------------------------------------

def cupy_scenario(_arg=None):
    import cupy

    out = {'meminfo': list(cupy.cuda.runtime.memGetInfo())}
    pool = cupy.get_default_memory_pool()
    arrays = [cupy.empty(GiB, dtype=cupy.uint8) for _ in range(20)]
    out['pool_used'] = pool.used_bytes()
    out['placement'] = placement([(a.data.ptr, GiB) for a in arrays])
    try:
        cupy.empty(10 * GiB, dtype=cupy.uint8)
        out['oom'] = None
    except cupy.cuda.memory.OutOfMemoryError as e:
        out['oom'] = str(e).splitlines()[0]
    import numpy as np
    host = cupy.asnumpy(cupy.asarray(np.arange(1000, dtype=np.int32)))
    out['copy_ok'] = int(host.sum()) == sum(range(1000))
    del arrays
    pool.free_all_blocks()
    out['after_free'] = {'pool_used': pool.used_bytes(), 'meminfo': list(cupy.cuda.runtime.memGetInfo())}
    return out


def torch_props(_arg=None):
    import torch

    p = torch.cuda.get_device_properties(0)
    return {'available': torch.cuda.is_available(), 'total_memory': p.total_memory, 'cc': f'{p.major}.{p.minor}',
            'mem_get_info': list(torch.cuda.mem_get_info())}


def torch_emuv_run(_arg=None):
    """PyTorch started by `emuv run` (docs/run.md): the card it sees, 20 GiB held, and the contract and stats
    file the run gave it (the stats file exists once CUDA is initialised)."""
    import torch

    out = torch_props()
    ts = [torch.empty(GiB, dtype=torch.uint8, device='cuda') for _ in range(20)]
    out['held'] = {
        'memory_allocated': torch.cuda.memory_allocated(),
        'mem_get_info': list(torch.cuda.mem_get_info()),
        'placement': placement([(t.data_ptr(), GiB) for t in ts]),
    }
    stats = os.environ.get('EMUV_STATS_FILE', '')
    out['contract'] = {k: v for k, v in os.environ.items() if k.startswith('EMUV_') and not k.startswith(('EMUV_SIM_', 'EMUV_REALSW_'))}
    out['stats_file_size'] = os.path.getsize(stats) if stats and os.path.exists(stats) else None
    del ts
    torch.cuda.empty_cache()
    return out


SCENARIOS = {
    'torch_props': torch_props,
    'torch_emuv_run': torch_emuv_run,  # through `emuv run` (test_realsw.py, run_through_emuv)
    'cudart12': lambda a: cudart(12),
    'cudart13': lambda a: cudart(13),
    'torch': torch_scenario,
    'torch_backend': torch_backend_scenario,
    'bindings': bindings_scenario,
    'cupy': cupy_scenario,
}

if __name__ == '__main__':
    name = sys.argv[1]
    result = SCENARIOS[name](sys.argv[2] if len(sys.argv) > 2 else None)
    sys.stdout.flush()
    print(json.dumps(result))
