#!/usr/bin/env python3
"""emuv GPU validation: emulate an 8 GiB GeForce (7.5 GiB VRAM share, 28 GiB virtual) on an H100.

Phases (run each in its own process, see emuv_gpu_validate.sh):
  micro   : PCIe H2D bandwidth, remote-read bandwidth of spill backends, matmul correctness
  gpu     : LLaMA-13B-shaped fp16 model fully in VRAM (upper baseline, reference logits)
  emuv    : same model under the interposer (EMUV_VRAM_SHARE=7680Mi, EMUV_LIMIT_BYTES=28Gi)
  accel   : HF accelerate device_map offload, max_memory {0: 7.5GiB, cpu: 100GiB}
  verdict : checks the pass criteria (docs/interposer.md §8, "What only a GPU can verify") on results.jsonl; exits 1 if any fails

Usage: python3 emuv_gpu_validate.py PHASE [OUT_DIR]
Every phase prints one JSON line to stdout and appends it to OUT_DIR/results.jsonl
(OUT_DIR defaults to $EMUV_GPU_OUT, else ./gpu-results).
"""
import json, os, sys, time

try:
    import torch
except ImportError:  # the verdict phase only reads results.jsonl
    torch = None

GiB = 1 << 30
OUT = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("EMUV_GPU_OUT", "gpu-results")
os.makedirs(OUT, exist_ok=True)
PROMPT, DECODE = int(os.environ.get("PROMPT", "128")), int(os.environ.get("DECODE", "16"))


def emit(d):
    d["phase"] = sys.argv[1]
    line = json.dumps(d, default=str)
    print(line, flush=True)
    with open(os.path.join(OUT, "results.jsonl"), "a") as f:
        f.write(line + "\n")


def ev_time(fn, iters=3):
    fn(); torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(iters):
        fn()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / 1e3 / iters


# ---------------------------------------------------------------- micro
def drv_ok(r):
    from cuda.bindings import driver as cu
    if r[0] != cu.CUresult.CUDA_SUCCESS:
        raise RuntimeError(str(r[0]))
    return r[1] if len(r) == 2 else r[1:]


def vmm_host_buffer(nbytes, loc_type_name):
    """cuMemCreate(HOST_NUMA|HOST) mapped into a device VA: the 'spill' backend (c)."""
    from cuda.bindings import driver as cu
    dev = drv_ok(cu.cuDeviceGet(0))
    numa = drv_ok(cu.cuDeviceGetAttribute(cu.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, dev))
    prop = cu.CUmemAllocationProp()
    prop.type = cu.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
    prop.location.type = getattr(cu.CUmemLocationType, loc_type_name)
    prop.location.id = max(numa, 0)
    gran = drv_ok(cu.cuMemGetAllocationGranularity(
        prop, cu.CUmemAllocationGranularity_flags.CU_MEM_ALLOC_GRANULARITY_MINIMUM))
    size = (nbytes + gran - 1) // gran * gran
    h = drv_ok(cu.cuMemCreate(size, prop, 0))
    va = drv_ok(cu.cuMemAddressReserve(size, gran, 0, 0))
    drv_ok((cu.cuMemMap(va, size, 0, h, 0)[0], None))
    desc = cu.CUmemAccessDesc()
    desc.location.type = cu.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
    desc.location.id = 0
    desc.flags = cu.CUmemAccess_flags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE
    drv_ok((cu.cuMemSetAccess(va, size, [desc], 1)[0], None))
    mtype = cu.cuPointerGetAttribute(cu.CUpointer_attribute.CU_POINTER_ATTRIBUTE_MEMORY_TYPE, va)
    return int(va), size, gran, numa, str(mtype[1]) if mtype[0] == cu.CUresult.CUDA_SUCCESS else str(mtype[0])


def view(ptr, nbytes, owner=None):
    import cupy as cp
    mem = cp.cuda.UnownedMemory(int(ptr), nbytes, owner, 0)
    arr = cp.ndarray((nbytes // 2,), dtype=cp.float16, memptr=cp.cuda.MemoryPointer(mem, 0))
    return torch.from_dlpack(arr)


def micro():
    from cuda.bindings import driver as cu
    torch.zeros(1, device="cuda")  # primary context current on this thread
    r = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    dev = drv_ok(cu.cuDeviceGet(0))
    for name in ("CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID",
                 "CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED",
                 "CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED",
                 "CU_DEVICE_ATTRIBUTE_HOST_NUMA_MEMORY_POOLS_SUPPORTED",
                 "CU_DEVICE_ATTRIBUTE_HOST_MEMORY_POOLS_SUPPORTED",
                 "CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS",
                 "CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS"):
        a = getattr(cu.CUdevice_attribute, name, None)
        r[name] = None if a is None else cu.cuDeviceGetAttribute(a, dev)[1]
    n = 4 * GiB
    # 1) PCIe: pinned and pageable H2D through the copy engine
    hp = torch.empty(GiB // 2, dtype=torch.float16, pin_memory=True)
    hq = torch.empty(GiB // 2, dtype=torch.float16)
    d = torch.empty(GiB // 2, dtype=torch.float16, device="cuda")
    r["h2d_pinned_GBps"] = GiB / ev_time(lambda: d.copy_(hp, non_blocking=True), 5) / 1e9
    r["h2d_pageable_GBps"] = GiB / ev_time(lambda: d.copy_(hq), 3) / 1e9
    del hp, hq, d
    # 2) remote reads by SMs (torch.sum) and by the copy engine (copy_) per backend
    backends = {}
    try:
        va, size, gran, numa, mtype = vmm_host_buffer(n, "CU_MEM_LOCATION_TYPE_HOST_NUMA")
        backends["vmm_host_numa"] = view(va, n)
        r.update(vmm_host_numa_granularity=gran, host_numa_id=numa, vmm_host_memtype=mtype)
    except Exception as e:
        r["vmm_host_numa_error"] = repr(e)
    try:
        va2, *_ = vmm_host_buffer(GiB, "CU_MEM_LOCATION_TYPE_HOST")
        r["vmm_host_ok"] = True
    except Exception as e:
        r["vmm_host_error"] = repr(e)
    try:
        pinned = torch.empty(n // 2, dtype=torch.float16, pin_memory=True)  # cudaHostAlloc, UVA-mapped
        dptr = drv_ok(cu.cuMemHostGetDevicePointer(pinned.data_ptr(), 0))
        backends["zero_copy_pinned"] = view(dptr, n, owner=pinned)
    except Exception as e:
        r["zero_copy_error"] = repr(e)
    vram = torch.empty(n // 2, dtype=torch.float16, device="cuda")
    backends["vram"] = vram
    out = torch.empty(n // 2, dtype=torch.float16, device="cuda")
    for k, t in backends.items():
        t.normal_()
        r[f"{k}_smread_GBps"] = n / ev_time(lambda: torch.sum(t, dtype=torch.float32), 3) / 1e9
        if k != "vram":
            r[f"{k}_ce_copy_GBps"] = n / ev_time(lambda: out.copy_(t), 3) / 1e9
    # 3) correctness + cost of GEMV (decode) and GEMM (prefill) with a weight in host memory
    src = backends.get("vmm_host_numa", backends.get("zero_copy_pinned"))
    if src is not None:
        W_host = src[: 13824 * 5120].view(13824, 5120)
        W_dev = W_host.clone()  # DtoD copy out of host-backed memory
        for tag, m in (("gemv", 1), ("gemm2048", 2048)):
            x = torch.randn(m, 5120, dtype=torch.float16, device="cuda")
            y_h, y_d = torch.nn.functional.linear(x, W_host), torch.nn.functional.linear(x, W_dev)
            r[f"{tag}_bitwise_equal"] = bool(torch.equal(y_h, y_d))
            r[f"{tag}_max_abs_diff"] = float((y_h.float() - y_d.float()).abs().max())
            r[f"{tag}_host_ms"] = 1e3 * ev_time(lambda: torch.nn.functional.linear(x, W_host), 5)
            r[f"{tag}_vram_ms"] = 1e3 * ev_time(lambda: torch.nn.functional.linear(x, W_dev), 5)
        # CUDA graph capture/replay reading the host-backed weight
        x = torch.randn(1, 5120, dtype=torch.float16, device="cuda")
        g, s = torch.cuda.CUDAGraph(), torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            y = torch.nn.functional.linear(x, W_host)
        torch.cuda.current_stream().wait_stream(s)
        with torch.cuda.graph(g):
            y = torch.nn.functional.linear(x, W_host)
        g.replay(); torch.cuda.synchronize()
        r["graph_replay_equal"] = bool(torch.equal(y, torch.nn.functional.linear(x, W_dev)))
    emit(r)


# ---------------------------------------------------------------- model phases
def llama13b_config():
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=32000, hidden_size=5120, intermediate_size=13824,
                       num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False)


def build_on(device):
    """Random fp16 weights created directly on `device` (no download, no fp32 detour)."""
    from transformers import LlamaForCausalLM
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float16)
    try:
        with torch.device(device):
            m = LlamaForCausalLM(llama13b_config())
    finally:
        torch.set_default_dtype(torch.float32)
    return m.eval()


def build_cpu_fast():
    """For the accelerate baseline: meta -> empty CPU storage -> constant fill (seconds, not minutes)."""
    from transformers import LlamaForCausalLM
    cfg = llama13b_config()
    with torch.device("meta"):
        m = LlamaForCausalLM(cfg).to(torch.float16)
    m = m.to_empty(device="cpu")
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(1e-3)
    try:  # non-persistent rotary buffer is garbage after to_empty: rebuild it
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
        m.model.rotary_emb = LlamaRotaryEmbedding(config=cfg, device="cpu")
    except Exception as e:
        print("rotary rebuild skipped:", e, file=sys.stderr)
    return m.eval()


def run_decode(model, r):
    with torch.no_grad():
        _run_decode(model, r)


def _run_decode(model, r):
    dev = "cuda"
    ids = torch.randint(0, 32000, (1, PROMPT), device=dev, generator=torch.Generator(dev).manual_seed(1))
    torch.cuda.synchronize(); t0 = time.perf_counter()
    out = model(input_ids=ids, use_cache=True)
    torch.cuda.synchronize(); r["prefill_s"] = time.perf_counter() - t0
    r["logits_probe"] = out.logits[0, -1, :8].float().tolist()
    r["logits_sum"] = float(out.logits[0, -1].float().sum())
    pkv, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(DECODE):
        out = model(input_ids=tok, past_key_values=pkv, use_cache=True)
        pkv, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize()
    r["decode_tok_per_s"] = DECODE / (time.perf_counter() - t0)
    r["max_reserved_GiB"] = torch.cuda.max_memory_reserved() / GiB


def phase_gpu_or_emuv():
    r = {"alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
         "ld_preload": os.environ.get("LD_PRELOAD", "")}
    free, total = torch.cuda.mem_get_info()
    r.update(mem_get_info_free_GiB=free / GiB, mem_get_info_total_GiB=total / GiB,
             props_total_GiB=torch.cuda.get_device_properties(0).total_memory / GiB)
    if os.environ.get("WARMUP") == "1":  # mimic transformers' caching_allocator_warmup: one huge block
        nbytes = min(26 * 10**9, int(free - 1.2 * GiB))
        blk = torch.empty(nbytes // 2, dtype=torch.float16, device="cuda"); del blk
        r["warmup_bytes"] = nbytes
    t0 = time.perf_counter(); model = build_on("cuda"); r["build_s"] = time.perf_counter() - t0
    r["param_GB"] = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9
    run_decode(model, r)
    stats = os.environ.get("EMUV_STATS_FILE")
    if stats and os.path.exists(stats):
        r["emuv_stats_bytes"] = os.path.getsize(stats)  # decoded by the agent's reader in CI
    emit(r)


def phase_accel():
    from accelerate import dispatch_model, infer_auto_device_map
    r = {}
    t0 = time.perf_counter(); model = build_cpu_fast()
    dm = infer_auto_device_map(model, max_memory={0: "7.5GiB", "cpu": "100GiB"},
                               no_split_module_classes=["LlamaDecoderLayer"], dtype=torch.float16)
    model = dispatch_model(model, device_map=dm)
    r["build_s"] = time.perf_counter() - t0
    r["layers_on_gpu"] = sum(1 for v in dm.values() if v == 0)
    r["layers_on_cpu"] = sum(1 for v in dm.values() if v == "cpu")
    global DECODE
    DECODE = min(DECODE, 8)
    run_decode(model, r)
    emit(r)


def verdict():
    """Pass criteria (docs/interposer.md §8, "What only a GPU can verify"): virtual totals, exact logits, bounded real VRAM, the split warm-up,
    and decode speed against the host-link bound and accelerate's CPU offload, all from this run."""
    rows = [json.loads(l) for l in open(os.path.join(OUT, "results.jsonl"))]
    by = {}
    for r in rows:
        by.setdefault(r["phase"], []).append(r)
    micro_r = (by.get("micro") or [{}])[0]
    ref = (by.get("gpu") or [{}])[0].get("logits_probe")
    emuv_runs = by.get("emuv", [])
    accel_tps = (by.get("accel") or [{}])[0].get("decode_tok_per_s")
    want_total = float(os.environ.get("EMUV_EXPECT_TOTAL_GIB", "28"))
    share_gib = float(os.environ.get("EMUV_EXPECT_SHARE_GIB", "7.5"))
    peak_mib = float(os.environ.get("EMUV_PEAK_VRAM_MIB", "nan"))
    context_mib = float(os.environ.get("EMUV_CONTEXT_MIB", "nan"))
    bw = micro_r.get("h2d_pinned_GBps")
    checks = []

    def check(name, ok, detail):
        checks.append((name, bool(ok), detail))

    check("micro: GEMV/GEMM/graph on host-backed weights are bitwise equal",
          micro_r.get("gemv_bitwise_equal") and micro_r.get("gemm2048_bitwise_equal") and micro_r.get("graph_replay_equal"),
          {k: micro_r.get(k) for k in ("gemv_bitwise_equal", "gemm2048_bitwise_equal", "graph_replay_equal")})
    check("emuv: three variants ran", len(emuv_runs) == 3, [r.get("alloc_conf") or ("warmup" if r.get("warmup_bytes") else "default") for r in emuv_runs])
    for r in emuv_runs:
        tag = r.get("alloc_conf") or ("warmup" if r.get("warmup_bytes") else "default")
        check(f"emuv[{tag}]: mem_get_info total = {want_total} GiB", abs(r.get("mem_get_info_total_GiB", 0) - want_total) < 1e-6, r.get("mem_get_info_total_GiB"))
        check(f"emuv[{tag}]: total_memory = {want_total} GiB", abs(r.get("props_total_GiB", 0) - want_total) < 1e-6, r.get("props_total_GiB"))
        diff = None if ref is None or "logits_probe" not in r else max(abs(a - b) for a, b in zip(ref, r["logits_probe"]))
        check(f"emuv[{tag}]: logits equal to the unconstrained run", diff is not None and diff <= 1e-3, diff)
        if bw:
            w_ram = r.get("param_GB", 25.7) - (share_gib * 1.0737 - 1.0)
            bound = bw / w_ram
            check(f"emuv[{tag}]: decode >= 0.7 x host-link bound ({bound:.2f} tok/s)", r.get("decode_tok_per_s", 0) >= 0.7 * bound, r.get("decode_tok_per_s"))
        if accel_tps:
            check(f"emuv[{tag}]: decode faster than accelerate offload ({accel_tps:.2f} tok/s)", r.get("decode_tok_per_s", 0) > accel_tps, r.get("decode_tok_per_s"))
    check("emuv[warmup]: the single ~25.6 GB allocation succeeded (split)", any(r.get("warmup_bytes") for r in emuv_runs), [r.get("warmup_bytes") for r in emuv_runs])
    if peak_mib == peak_mib and context_mib == context_mib:  # both measured (not NaN)
        limit = share_gib * 1024 + context_mib + 512
        check(f"real VRAM peak <= share + context + 0.5 GiB ({limit:.0f} MiB)", peak_mib <= limit, peak_mib)
    else:
        check("real VRAM peak measured", False, "no nvidia-smi trace")
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}  [{detail}]")
    failed = sum(1 for _, ok, _ in checks if not ok)
    print(f"gpu: {len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    {"micro": micro, "gpu": phase_gpu_or_emuv, "emuv": phase_gpu_or_emuv, "accel": phase_accel, "verdict": verdict}[sys.argv[1]]()
