"""Resource readings for the `util` event: psutil for the process, NVML (nvidia-ml-py) for the GPU."""

from __future__ import annotations

from typing import Any

import psutil


def nvml_device_count() -> int:
    """NVIDIA GPUs the driver reports (0 when there is no driver); needs no torch."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no library, no driver, no device: all mean "no GPU"
        return 0


class ProcessSampler:
    """Reads CPU %, RSS and, for a GPU rank, that GPU's utilization and memory."""

    def __init__(self, gpu_index: int | None = None) -> None:
        self.process = psutil.Process()
        self.process.cpu_percent(None)
        psutil.cpu_percent(None)
        self.gpu = None
        self.gpu_index = gpu_index
        if gpu_index is not None:
            try:
                import pynvml

                pynvml.nvmlInit()
                self.gpu = pynvml.nvmlDeviceGetHandleByIndex(gpu_index)
                self._nvml = pynvml
            except Exception:  # noqa: BLE001
                self.gpu = None

    def sample(self) -> dict[str, Any]:
        reading: dict[str, Any] = {
            "cpu_percent": self.process.cpu_percent(None),
            "rss_mb": self.process.memory_info().rss / 2**20,
            "system_cpu_percent": psutil.cpu_percent(None),
        }
        if self.gpu is not None:
            rates = self._nvml.nvmlDeviceGetUtilizationRates(self.gpu)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self.gpu)
            reading.update(
                gpu_index=self.gpu_index, gpu_util=float(rates.gpu), gpu_mem_mb=memory.used / 2**20,
                gpu_mem_total_mb=memory.total / 2**20,
            )
        return reading
