"""A Raspberry Pi 4 latency estimate from a model's FLOPs and the bytes it reads per call.

This is arithmetic, not a measurement: it says roughly what to expect before a bundle is copied to
a Pi, and every assumption is printed with it. Measure on the device with `bench/device/pi.sh`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DeviceProfile:
    """What the estimate assumes about a device's CPU and memory."""

    name: str
    clock_ghz: float
    fp32_flops_per_cycle: float  # peak per core
    efficiency: float  # share of peak a tuned GEMM library (XNNPACK, MLAS) sustains on encoder shapes
    int8_speedup: float  # dynamic-range int8 GEMMs vs fp32, same core
    memory_gb_s: float  # sustained DRAM bandwidth the weights stream through
    note: str

    def gflops(self, quantize: str, threads: int) -> float:
        base = self.clock_ghz * self.fp32_flops_per_cycle * self.efficiency * threads
        return base * (self.int8_speedup if quantize.startswith("int8") else 1.0)


PI4 = DeviceProfile(
    name="Raspberry Pi 4 Model B (4x Cortex-A72 @ 1.8 GHz, LPDDR4)",
    clock_ghz=1.8,
    fp32_flops_per_cycle=16.0,  # two 128-bit NEON pipes, 4 fp32 lanes each, fused multiply-add
    efficiency=0.35,
    int8_speedup=1.5,  # ARMv8.0: no SDOT, int8 GEMMs go through SMLAL, worth ~1.5x over fp32, not 4x
    memory_gb_s=4.0,
    note="fp16 weights are widened to fp32 (A72 has no fp16 arithmetic): fp16 runs at fp32 speed",
)


def encoder_flops(arch: dict, seq_len: int, batch: int = 1) -> float:
    """Floating-point operations of one call of a BERT-style encoder (matmuls and attention); `arch` as
    `checkpoint.architecture` gives it and a bundle's config records it."""
    h, f, layers = arch["hidden"], arch["intermediate"], arch["layers"]
    per_layer = 2 * seq_len * (4 * h * h + 2 * h * f) + 2 * 2 * seq_len * seq_len * h
    return float(batch * layers * per_layer)


def weight_bytes_per_call(arch: dict, quantize: str, seq_len: int) -> float:
    """Encoder weights streamed from DRAM per call (they do not fit the A72's 1 MB L2), plus the
    embedding rows looked up; the rest of the embedding table is never read."""
    h, f, layers = arch["hidden"], arch["intermediate"], arch["layers"]
    per_weight = {"none": 4, "fp16": 2, "int8": 1, "int8-static": 1, "q4": 0.5625}.get(quantize, 4)
    return layers * (4 * h * h + 2 * h * f) * per_weight + seq_len * h * per_weight


def estimate_ms(arch: dict, quantize: str, seq_len: int, *, threads: int = 1, profile: DeviceProfile = PI4) -> dict:
    """Estimated ms per call: the slower of compute and weight streaming, with its inputs."""
    flops = encoder_flops(arch, seq_len)
    compute_ms = flops / (profile.gflops(quantize, threads) * 1e9) * 1e3
    memory_ms = weight_bytes_per_call(arch, quantize, seq_len) / (profile.memory_gb_s * 1e9) * 1e3
    return {"estimate_ms": max(compute_ms, memory_ms), "compute_ms": compute_ms, "memory_ms": memory_ms,
            "gflop": flops / 1e9, "bound": "compute" if compute_ms >= memory_ms else "memory",
            "threads": threads, "quantize": quantize, "assumptions": asdict(profile), "is_estimate": True}
