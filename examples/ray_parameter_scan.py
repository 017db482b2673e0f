"""A grid scan of a damped oscillator's parameters on Ray, every point a tracked task run.

    python examples/ray_parameter_scan.py --points 20
    python examples/ray_parameter_scan.py --points 20 --address 127.0.0.1:6379

``--points`` per axis (20 gives a 400-point grid). Without ``--address`` the RayTaskRunner starts
a local Ray for the flow and shuts it down after; with one it joins that cluster.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "runners")]

from prefect_like_ray import RayTaskRunner  # noqa: E402

from prefect_like import flow, task  # noqa: E402


@task(task_run_name="k={stiffness:.2f},c={damping:.2f}")
def simulate(stiffness: float, damping: float, steps: int = 2000) -> dict:
    """Integrate x'' = -k x - c x' from x=1; report how far it still swings in the last 10%."""
    x, v, dt = 1.0, 0.0, 0.01
    tail = []
    for step in range(steps):
        v += (-stiffness * x - damping * v) * dt
        x += v * dt
        if step >= steps * 0.9:
            tail.append(abs(x))
    return {"stiffness": stiffness, "damping": damping, "amplitude": round(max(tail), 6)}


@flow(name="ray-parameter-scan")
def scan(points: int) -> list[dict]:
    axis = [0.1 + 2.0 * i / max(points - 1, 1) for i in range(points)]
    grid = list(itertools.product(axis, axis))
    return simulate.map([k for k, _ in grid], [c for _, c in grid]).result()


def main() -> None:
    parser = argparse.ArgumentParser(description="parameter scan on Ray")
    parser.add_argument("--points", type=int, default=20, help="grid points per axis")
    parser.add_argument("--address", default=None, help="a running Ray cluster (default: a local Ray)")
    args = parser.parse_args()
    runner = RayTaskRunner(address=args.address, init_kwargs={"log_to_driver": False})
    state = scan.with_options(task_runner=runner)(args.points, return_state=True)
    results = state.result()
    settled = [r for r in results if r["amplitude"] < 1e-3]
    quickest = min(results, key=lambda r: r["amplitude"])
    print(f"\n{len(results)} grid points on Ray; flow run {state.run_id} ended {state.name}")
    print(f"{len(settled)} settle below 1e-3; most damped: k={quickest['stiffness']:.2f} "
          f"c={quickest['damping']:.2f} amplitude={quickest['amplitude']:.2e}")
    print(f"inspect it: prefect-like runs show {state.run_id}")
    if not math.isfinite(quickest["amplitude"]):
        raise SystemExit("the scan diverged")


if __name__ == "__main__":
    main()
