"""What CPU this process computes on: vendor, model, instruction sets and cache sizes, from CPUID.

The bits of a float32 training can depend on all of these (chapter 8): the instruction set decides
which kernels oneDNN and OpenBLAS pick, and the cache sizes decide how Eigen blocks a matrix
product. The values come from the ``cpuid`` instruction executed *in this process*, so a process
running under an emulator (``qemu-x86_64 -cpu MODEL``) reports the emulated CPU, exactly as the
libraries that choose kernels see it; ``/proc/cpuinfo`` would describe the host instead. Where
CPUID cannot run (not x86-64, or executable memory refused), :func:`describe` falls back to
``/proc/cpuinfo``.
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import struct
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

# x86-64 System V: void cpuid(uint32 leaf, uint32 subleaf, uint32 out[4]).
_CPUID_CODE = bytes(
    [
        0x53,  # push rbx (callee-saved, and cpuid overwrites it)
        0x49, 0x89, 0xD0,  # mov r8, rdx      (out)
        0x89, 0xF8,  # mov eax, edi            (leaf)
        0x89, 0xF1,  # mov ecx, esi            (subleaf)
        0x0F, 0xA2,  # cpuid
        0x41, 0x89, 0x00,  # mov [r8], eax
        0x41, 0x89, 0x58, 0x04,  # mov [r8+4], ebx
        0x41, 0x89, 0x48, 0x08,  # mov [r8+8], ecx
        0x41, 0x89, 0x50, 0x0C,  # mov [r8+12], edx
        0x5B,  # pop rbx
        0xC3,  # ret
    ]
)  # fmt: skip

#: oneDNN's instruction-set names, lowest first (``ONEDNN_MAX_CPU_ISA`` takes these).
ISA_ORDER = ("SSE41", "AVX", "AVX2", "AVX512_CORE")


@dataclass(frozen=True)
class CpuInfo:
    """A CPU as CPUID describes it. Cache sizes are in bytes, per core for L1 and L2."""

    vendor: str
    model_name: str
    family: int
    model: int
    flags: tuple[str, ...]
    l1d: int | None
    l2: int | None
    l3: int | None
    source: str = "cpuid"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best_isa(self) -> str | None:
        """The highest oneDNN ISA class this CPU supports (None: below SSE4.1 or not x86)."""
        f = set(self.flags)
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= f:
            return "AVX512_CORE"
        for isa, needed in (("AVX2", {"avx2", "fma"}), ("AVX", {"avx"}), ("SSE41", {"sse4_1"})):
            if needed <= f:
                return isa
        return None

    def effective_isa(self, cap: str | None) -> str | None:
        """What oneDNN dispatches to under ``cap`` (``ONEDNN_MAX_CPU_ISA``): the lower one."""
        best = self.best_isa
        if best is None or cap is None or cap.upper() not in ISA_ORDER:
            return best
        return ISA_ORDER[min(ISA_ORDER.index(best), ISA_ORDER.index(cap.upper()))]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"] = list(self.flags)
        d["best_isa"] = self.best_isa
        return d


class _Cpuid:
    """Runs the ``cpuid`` instruction from a page of executable memory."""

    def __init__(self) -> None:
        self._page = mmap.mmap(
            -1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
        )
        self._page.write(_CPUID_CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        proto = ctypes.CFUNCTYPE(
            None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)
        )
        self._fn = proto(address)

    def __call__(self, leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
        out = (ctypes.c_uint32 * 4)()
        self._fn(leaf, subleaf, out)
        return out[0], out[1], out[2], out[3]


_FLAG_BITS = {  # (leaf, subleaf, register index, bit) -> Linux flag name
    (1, 0, 2, 19): "sse4_1",
    (1, 0, 2, 20): "sse4_2",
    (1, 0, 2, 12): "fma",
    (1, 0, 2, 28): "avx",
    (7, 0, 1, 5): "avx2",
    (7, 0, 1, 16): "avx512f",
    (7, 0, 1, 17): "avx512dq",
    (7, 0, 1, 30): "avx512bw",
    (7, 0, 1, 31): "avx512vl",
    (7, 0, 2, 11): "avx512_vnni",
    (7, 1, 0, 5): "avx512_bf16",
    (7, 0, 3, 24): "amx_tile",
}


def _from_cpuid() -> CpuInfo:
    cpuid = _Cpuid()
    max_leaf, b, c, d = cpuid(0)
    vendor = struct.pack("<III", b, d, c).decode("ascii", "replace")
    max_ext = cpuid(0x80000000)[0]
    brand = ""
    if max_ext >= 0x80000004:
        raw = b"".join(struct.pack("<IIII", *cpuid(leaf)) for leaf in range(0x80000002, 0x80000005))
        brand = raw.decode("ascii", "replace").strip("\0 ")
    eax = cpuid(1)[0]
    base_family = (eax >> 8) & 0xF
    family = base_family + ((eax >> 20) & 0xFF if base_family == 0xF else 0)
    model = (eax >> 4) & 0xF
    if base_family in (0x6, 0xF):
        model |= ((eax >> 16) & 0xF) << 4
    regs = {}
    for leaf, sub, _reg, _bit in _FLAG_BITS:
        if leaf <= max_leaf and (leaf, sub) not in regs:
            regs[leaf, sub] = cpuid(leaf, sub)
    flags = tuple(
        name
        for (leaf, sub, reg, bit), name in _FLAG_BITS.items()
        if (leaf, sub) in regs and regs[leaf, sub][reg] >> bit & 1
    )
    caches: dict[str, int] = {}
    # Deterministic cache parameters: leaf 4 on Intel, 0x8000001D on AMD (what libraries read).
    leaf = 4 if vendor == "GenuineIntel" else 0x8000001D
    if (leaf == 4 and max_leaf >= 4) or (leaf != 4 and max_ext >= 0x8000001D):
        for index in range(16):
            a, b, c, _ = cpuid(leaf, index)
            kind = a & 0x1F
            if kind == 0:
                break
            level = (a >> 5) & 0x7
            size = (((b >> 22) & 0x3FF) + 1) * (((b >> 12) & 0x3FF) + 1) * ((b & 0xFFF) + 1)
            size *= c + 1
            if kind in (1, 3):  # data or unified
                caches.setdefault({1: "l1d", 2: "l2", 3: "l3"}.get(level, f"l{level}"), size)
    if not caches and max_ext >= 0x80000006:  # older AMD: the legacy leaves
        caches["l1d"] = (cpuid(0x80000005)[2] >> 24) * 1024
        _, _, ecx, edx = cpuid(0x80000006)
        caches["l2"] = (ecx >> 16) * 1024
        caches["l3"] = (edx >> 18) * 512 * 1024
    return CpuInfo(
        vendor=vendor,
        model_name=brand or vendor,
        family=family,
        model=model,
        flags=tuple(sorted(flags)),
        l1d=caches.get("l1d"),
        l2=caches.get("l2"),
        l3=caches.get("l3"),
    )


def _size(text: str) -> int | None:
    parts = text.split()
    if not parts or not parts[0].isdigit():
        return None
    unit = {"K": 1024, "KB": 1024, "M": 1 << 20, "MB": 1 << 20}.get(
        parts[1].upper() if len(parts) > 1 else "", 1
    )
    return int(parts[0]) * unit


def _from_proc_cpuinfo() -> CpuInfo:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    present = set(fields.get("flags", "").split())
    return CpuInfo(
        vendor=fields.get("vendor_id", platform.machine()),
        model_name=fields.get("model name", platform.processor() or platform.machine()),
        family=int(fields.get("cpu family", "0") or 0),
        model=int(fields.get("model", "0") or 0),
        flags=tuple(sorted(name for name in set(_FLAG_BITS.values()) if name in present)),
        l1d=None,
        l2=_size(fields.get("cache size", "")),
        l3=None,
        source="/proc/cpuinfo",
    )


@cache
def describe() -> CpuInfo:
    """This process's CPU (cached: it does not change while the process runs)."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        try:
            return _from_cpuid()
        except (OSError, ValueError, PermissionError):  # no executable memory here
            pass
    return _from_proc_cpuinfo()


def machine() -> dict[str, Any]:
    """This machine for a benchmark record: the CPU as CPUID describes it and the core count."""
    import os

    return {"cpu": describe().to_dict(), "logical_cpus": os.cpu_count()}


def short_size(n: int | None) -> str:
    """``1048576`` -> ``'1 MiB'``; None -> ``'?'``."""
    if n is None:
        return "?"
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"
