"""Is `ens-tui predict` fast enough to use interactively? 1,000 PNGs through a 4-member seed-cnn ensemble.

    python -m bench.predict [--run RUN] [--images 1000] [--repeats 5]

Without --run it first trains quick-digits with 4 members (3 epochs, a few seconds). The images are the
run's own test digits, cycled to --images files, written as 28×28 grayscale PNGs. Measured:

- end to end: `ens-tui predict RUN FOLDER --format json` as a user types it, process start-up and the
  torch import included (the target: under 2 s for 1,000 images), and the engine process alone
  (`python -m engine.predict`, without the `ens-tui` front process), and the bare imports;
- in process: Ensemble.load, reading the files, Ensemble.predict (first call and steady);
- the design choices behind those: a thread pool for decoding, channels-last member weights, the members
  stacked with torch.func instead of a loop, and all cores vs one thread while other torch processes keep the
  cores busy (one multi-threaded, or one single-threaded per core).

Results go to bench/results/predict-<machine>-<date>.json, with the load average before and after.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.func import functional_call, stack_module_state, vmap

from bench.record import write_results
from engine.ensemble import Ensemble
from engine.predict import idle_cores, read_inputs
from engine.predictions import load_predictions
from engine.run_folder import RunFolder

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 2.0


def wall(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} … failed: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def one_thread(fn: Callable[[], list[float]]) -> list[float]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def train(out: Path, members: int) -> Path:
    runs = out / "runs"
    wall([sys.executable, "-m", "ens_tui", "--run-config", "configs/quick-digits.toml", "--members", str(members),
          "--epochs", "3", "--output-dir", str(runs)])
    (folder,) = runs.iterdir()
    return folder


def write_pngs(run: Path, folder: Path, count: int) -> None:
    images = np.round(load_predictions(RunFolder(run).predictions)["images"][:, 0] * 255).astype(np.uint8)
    folder.mkdir()
    for i in range(count):
        Image.fromarray(images[i % len(images)]).save(folder / f"{i:04d}.png")


def end_to_end(run: Path, pngs: Path, count: int, repeats: int) -> dict[str, list[float]]:
    ens_tui = [sys.executable, "-m", "ens_tui", "predict", str(run), str(pngs), "--format", "json"]
    engine = [sys.executable, "-m", "engine.predict", str(run), str(pngs), "--format", "json"]
    result: dict[str, list[float]] = {"ens_tui_predict": [], "engine_predict": [], "import_torch": [],
                                      "import_engine_predict": []}
    for _ in range(repeats):
        seconds, stdout = wall(ens_tui)
        assert len(json.loads(stdout)) == count, "predict did not score every image"
        result["ens_tui_predict"].append(seconds)
        result["engine_predict"].append(wall(engine)[0])
        result["import_torch"].append(wall([sys.executable, "-c", "import torch"])[0])
        result["import_engine_predict"].append(
            wall([sys.executable, "-c", "import engine.predict, engine.ensemble"])[0])
    return result


def in_process(run: Path, pngs: Path, repeats: int) -> dict[str, Any]:
    start = time.perf_counter()
    ensemble = Ensemble.load(run)
    load = time.perf_counter() - start
    skipped: list[str] = []
    items = read_inputs([str(pngs)], skipped)
    images = [item.image for item in items]
    stacked = torch.from_numpy(np.stack(images))
    first = timed(lambda: ensemble.predict_images(images), 1)[0]

    def pooled() -> None:
        files = sorted(pngs.iterdir())
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda f: read_inputs([str(f)], skipped), files))

    prepared = ensemble.module.prepare(stacked)
    contiguous = [copy.deepcopy(m).to(memory_format=torch.contiguous_format) for m in ensemble.module.members]
    params, buffers = stack_module_state(contiguous)  # type: ignore[arg-type]
    base = copy.deepcopy(contiguous[0]).to("meta")
    stacked_forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))

    @torch.inference_mode()
    def members_loop(models: list[torch.nn.Module]) -> None:
        for i in range(0, len(prepared), 512):
            for model in models:
                torch.softmax(model(prepared[i : i + 512]), dim=1)

    @torch.inference_mode()
    def members_stacked() -> None:
        for i in range(0, len(prepared), 512):
            torch.softmax(stacked_forward(params, buffers, prepared[i : i + 512]), dim=-1)

    def beside(threads: int, processes: int) -> dict[str, list[float]]:
        """Predict while other torch processes (`threads` each) keep the cores busy, as a training run would."""
        spin = f"import torch; torch.set_num_threads({threads}); a = torch.randn(512, 512)\nwhile True: a @ a"
        spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(processes)]
        try:
            time.sleep(3)  # their torch import
            return {"all_threads_s": timed(lambda: ensemble.predict(stacked), repeats),
                    "1_thread_s": one_thread(lambda: timed(lambda: ensemble.predict(stacked), repeats))}
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()

    cores = os.cpu_count() or 1
    return {
        "load_s": load,
        "beside_one_multithreaded_torch_process": beside(cores, 1),
        "beside_single_threaded_torch_processes": beside(1, cores),
        "read_files_s": timed(lambda: read_inputs([str(pngs)], skipped), repeats),
        "read_files_4_threads_s": timed(pooled, repeats),
        "predict_images_first_call_s": first,
        "predict_images_s": timed(lambda: ensemble.predict_images(images), repeats),
        "predict_tensor_s": timed(lambda: ensemble.predict(stacked), repeats),
        "predict_tensor_1_thread_s": one_thread(lambda: timed(lambda: ensemble.predict(stacked), repeats)),
        "members_loop_channels_last_s": timed(lambda: members_loop(list(ensemble.module.members)), repeats),
        "members_loop_contiguous_s": timed(lambda: members_loop(contiguous), repeats),
        "members_stacked_torch_func_s": timed(members_stacked, repeats),
        "torch_threads": torch.get_num_threads(),
        "threads_predict_would_use": idle_cores(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished run to use (default: train quick-digits, 4 members)")
    parser.add_argument("--members", type=int, default=4, help="members of the run trained when --run is not given")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--note", default="", help="what was special about this checkout or machine (kept in the JSON)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run if args.run is not None else train(Path(tmp), args.members)
        pngs = Path(tmp) / "pngs"
        write_pngs(run, pngs, args.images)
        e2e = end_to_end(run, pngs, args.images, args.repeats)
        inside = in_process(run, pngs, args.repeats)
        members = len(Ensemble.load(run).members)
    flat = {**e2e, **inside}
    for name, short in (("beside_one_multithreaded_torch_process", "beside_mt"),
                        ("beside_single_threaded_torch_processes", "beside_st")):
        flat.update({f"{short}_{k}": v for k, v in inside[name].items()})
    medians = {k: statistics.median(v) for k, v in flat.items() if isinstance(v, list)}
    result = {
        "machine": platform.node(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__, "python": platform.python_version(),
        "workload": f"{args.images} PNG files (28x28 grayscale) through {members} seed-cnn members (quick-digits)",
        "repeats": args.repeats, "target_s": TARGET_S, "note": args.note,
        "end_to_end": e2e, "in_process": inside, "medians": medians,
        "target_met": medians["ens_tui_predict"] < TARGET_S,
        "load_before": load_before, "load_after": os.getloadavg(),
    }
    path = write_results("predict", result)
    for name, value in medians.items():
        print(f"{name:32s} {value:8.3f} s")
    print(f"ens-tui predict, {args.images} images, {members} members: {medians['ens_tui_predict']:.2f} s end to end "
          f"(median of {args.repeats}; target < {TARGET_S:g} s: {'met' if result['target_met'] else 'NOT met'}); "
          f"load {load_before[0]:.2f} → {result['load_after'][0]:.2f} → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
