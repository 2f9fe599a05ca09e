"""The driver ABIs that NVIDIA's cudaTypedefs.h declares, and the export that carries each.

Every `PFN_<base>_v<version>[_ptsz|_ptds]` typedef names one ABI of one driver entry point. The driver
exports the oldest ABI of a base as `<base>`, the next as `<base>_v2`, and so on; a per-thread variant
is the export of the newest legacy ABI at or below its version plus `_ptsz`/`_ptds`. Shared by
gen-pfn-table.py (the simulated driver's cuGetProcAddress table) and gen-hook-abis.py (the interposer's
hook coverage check), so the two can never disagree on a name.
"""
import re
from typing import NamedTuple

_PFN = re.compile(r'\*\s*PFN_(\w+)_v(\d{4,5})(_ptsz|_ptds)?\)\s*\(')


class Abi(NamedTuple):
    base: str      # the name cuGetProcAddress is asked for
    version: int   # the CUDA version that introduced this ABI
    variant: str   # '', '_ptsz' or '_ptds'
    export: str    # the driver's exported symbol for it

    @property
    def pfn(self) -> str:
        return f'PFN_{self.base}_v{self.version}{self.variant}'


def read_abis(typedefs_path: str) -> list[Abi]:
    found = set()
    with open(typedefs_path, encoding='utf-8') as f:
        for line in f:
            m = _PFN.search(line)
            if m:
                found.add((m.group(1), int(m.group(2)), m.group(3) or ''))
    legacy: dict[str, list[int]] = {}
    for base, ver, var in found:
        if var == '':
            legacy.setdefault(base, []).append(ver)

    def legacy_export(base: str, ver: int) -> str:
        vs = sorted(v for v in legacy.get(base, ()) if v <= ver)
        if not vs:
            return base
        return base if len(vs) == 1 else f'{base}_v{len(vs)}'

    return [Abi(b, v, var, legacy_export(b, v) + var) for (b, v, var) in sorted(found)]
