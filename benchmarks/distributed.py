"""Steps per second of data-parallel DPO (torch backend) with 1 and 2 processes.

    python benchmarks/distributed.py [--steps 20] [--batch-size 8] [--device cpu]

Launches `python -m torch.distributed.run --nproc_per_node N` on this file for each N;
each run trains the default TinyGPT (float32) on the built-in pairs with the same global
batch, and rank 0 reports the steps per second of the steps after the first two (warm-up).
Measured, not asserted: on a 2-core CPU two processes share the cores one already uses.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(steps, batch_size, device):
    sys.path.insert(0, ROOT)
    from backends import get_backend
    from dpo.config import DPOConfig
    from dpo.data import make_preferences
    from dpo.distributed import from_environment, local_device
    from dpo.training import build_models, train_dpo

    be = get_backend("torch", device=local_device(device), dtype="float32")
    dist = from_environment(be)
    config = DPOConfig(batch_size=batch_size, max_steps=steps, sft_steps=0, warmup_steps=0, log_every=1)
    policy, reference = build_models(config, backend=be)
    stamps = []

    def on_log(row):
        if "loss" in row:
            be.synchronize()
            stamps.append(time.perf_counter())

    train_dpo(policy, reference, list(make_preferences()), config, on_log=on_log, dist=dist)
    if dist.is_main:
        timed = stamps[2:]
        print(json.dumps({"processes": dist.world_size, "steps_per_s": (len(timed) - 1) / (timed[-1] - timed[0])}))
    dist.close()


def launch(n, steps, batch_size, device):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_addr",
               "127.0.0.1", "--master_port", str(port), os.path.abspath(__file__), "--worker", "--steps", str(steps),
               "--batch-size", str(batch_size), "--device", device]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8, help="the global batch (pairs per update)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.steps, args.batch_size, args.device)
    print(f"DPO steps/s, default TinyGPT, float32, global batch {args.batch_size}, {args.device}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')} per process, {os.cpu_count()} CPUs")
    for n in (int(x) for x in args.processes.split(",")):
        result = launch(n, args.steps, args.batch_size, args.device)
        print(f"  {n} process(es): {result['steps_per_s']:.2f} steps/s")


if __name__ == "__main__":
    main()
