"""The run's time budget: the work each stage will do, and from this machine's measured rate, how long it takes.

Work is counted in GFLOP from the model's own layers (a convolution or dense layer: 2 x its multiply-adds;
Xception at 299x299 is 16.7 GFLOP, 14.7 of them below block 13). The machine's rate is its cores x one core's
sgemm (numpy's 2048^3 product on one thread, the best of a few short tries): what a perfect engine would reach.
No stage reaches it; EFFICIENCY is the share each did in `make run`, by the family of CPU it ran on (AMX, AVX-512,
AVX2 alone: project/cpu_class.py), so the estimate uses shares measured on a CPU like this one, or says which
family's it borrowed. A backbone whose layers reach other shares (EfficientNet-Lite's depthwise convolutions)
has its own in its registry entry (Backbone.efficiency); the actual split printed at the end says how far off it
was.
"""

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass

import keras

from project.cpu_class import this_family
from project.progress import duration
from train.config import TrainConfig
from train.model import Models

# share of cores x sgemm each stage ran at in make run, by CPU family (project/cpu_class.py): Xception's, on the
# 2-core AMD EPYC with AVX-512 (bench/results/make_run.json, seed 1)
EFFICIENCY = {"avx512": {"fill": 0.71, "head": 0.63, "fine-tuning": 0.71, "test": 0.57, "conversion": 0.50}}
KINDS = tuple(EFFICIENCY["avx512"])  # the stages' kinds: each has a share in the reference family
# Where a family was not measured, the nearest that was: a CPU of another family (arm64, unknown) takes the
# reference machine's first.
NEAREST = {"amx": ("amx", "avx512", "avx2"), "avx512": ("avx512", "amx", "avx2"), "avx2": ("avx2", "avx512", "amx")}
OTHERS = ("avx512", "amx", "avx2")

# One probe on a busy machine read 87.7 GFLOP/s against its idle 208.6, and make run's estimates came out 1.2-2x
# too long: the rate is the best of a few short tries, each its own process, and the tries are kept beside it
PROBE_TRIES = 3
PROBE_PRODUCTS = 3  # timed products a try (after one that warms up), its best kept
MATMUL_PROBE = """
import json, sys, time, numpy as np
a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32); b = a.copy()
a @ b
times = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
print(json.dumps(2 * 2048 ** 3 / min(times) / 1e9))
"""


def sgemm_tries(tries: int = PROBE_TRIES) -> list[float]:
    """GFLOP/s of numpy's single-thread sgemm 2048^3 in each of `tries` processes run one after another, the
    OpenBLAS overrides unset."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    probe = [sys.executable, "-c", MATMUL_PROBE, str(PROBE_PRODUCTS)]
    return [json.loads(subprocess.check_output(probe, env=env, text=True)) for _ in range(tries)]


def sgemm_one_thread() -> float:
    """One core's sgemm rate: the best of the tries (what another process took from them is not the core's)."""
    return max(sgemm_tries())


@dataclass(frozen=True)
class MachineRate:
    """What a perfect engine would reach here, and the probe it comes from: one core's sgemm in each try (empty in
    a run.json from before the tries were kept), so a reader can tell a probe another process disturbed."""

    gflops: float
    tries: tuple[float, ...] = ()
    family: str = "unknown"  # the CPU's (project/cpu_class.py family): which shares estimate its stages

    def __str__(self) -> str:
        rate = f"{self.gflops:.0f} GFLOP/s = cores x one core's sgemm"
        if self.tries:
            tries = ", ".join(f"{t:.0f}" for t in self.tries)
            rate += f", the best of tries at {tries} GFLOP/s ({self.spread:.0%} apart)"
        return f"{rate}; CPU family {self.family}"

    @property
    def spread(self) -> float:
        """How far the worst try fell below the best: near 0 on an idle machine."""
        return 1 - min(self.tries) / max(self.tries) if self.tries else 0.0

    def as_json(self) -> dict:
        return {
            "rate_gflops": round(self.gflops, 1),
            "sgemm_tries_gflops": [round(t, 1) for t in self.tries],
            "sgemm_spread": round(self.spread, 3),
            "cpu_family": self.family,
        }

    @classmethod
    def from_json(cls, budget: dict) -> "MachineRate":
        tries = tuple(budget.get("sgemm_tries_gflops", ()))
        return cls(budget["rate_gflops"], tries, budget.get("cpu_family", "unknown"))


def machine_rate() -> MachineRate:
    """Every core at one core's best sgemm rate of PROBE_TRIES tries."""
    tries = sgemm_tries()
    return MachineRate((os.cpu_count() or 1) * max(tries), tuple(tries), this_family())


def _leaf_layers(model: keras.Model):
    for layer in model.layers:
        if getattr(layer, "layers", None):
            yield from _leaf_layers(layer)
        else:
            yield layer


COUNTED = (keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D, keras.layers.Conv2D, keras.layers.Dense)


def forward_gflop(model: keras.Model) -> float:
    """One image's forward pass through model's convolutions and dense layers (the rest is noise beside them)."""
    total = 0
    for layer in _leaf_layers(model):
        if not isinstance(layer, COUNTED):
            continue
        # the first call's shapes: the nested models of train/model.py reuse one graph's layers, at one size
        node = layer._inbound_nodes[0]
        inputs, out = node.input_tensors[0].shape[-1], node.output_tensors[0].shape
        positions = 1
        for d in out[1:-1]:
            positions *= d
        if isinstance(layer, keras.layers.SeparableConv2D):  # depthwise k x k, then pointwise 1 x 1
            widened = inputs * layer.depth_multiplier
            total += 2 * positions * widened * (layer.kernel_size[0] * layer.kernel_size[1] + out[-1])
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            total += 2 * positions * inputs * layer.depth_multiplier * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            total += 2 * positions * out[-1] * kernel * inputs // layer.groups
        else:
            total += 2 * positions * inputs * out[-1]
    return total / 1e9


def fine_tuning_epoch_gflop(top_gflop: float, trained: int, validated: int) -> float:
    """One fine-tuning epoch's work: a training image costs about three forward passes through the trainable
    part (forward, then backward: gradients and weights), a validation image one (top_gflop: forward_gflop)."""
    return (3 * trained + validated) * top_gflop


@dataclass
class Stage:
    name: str
    kind: str  # one of KINDS
    work: str  # what it does, in the stage's own unit (image-views, epochs x images)
    gflop: float
    estimate_s: float = 0.0
    actual_s: float | None = None
    share_from: str = ""  # the CPU family whose measured share made the estimate


def share(kind: str, family: str, shares: dict | None = None) -> tuple[float, str]:
    """The share of cores x sgemm a stage of this kind reaches on this CPU family, and the family it was measured
    on: the backbone's own (shares) before EFFICIENCY's, the nearest measured family first (NEAREST)."""
    for table in (shares or {}, EFFICIENCY):
        for near in NEAREST.get(family, OTHERS):
            if kind in table.get(near, {}):
                return table[near][kind], near
    raise KeyError(f"no share is known for a stage of kind {kind!r}; kinds: {', '.join(KINDS)}")


def stage(name: str, work: str, gflop: float, kind: str, rate: MachineRate, shares: dict | None = None) -> Stage:
    """A stage and its estimate: its work over the machine's rate times the share this kind reaches there."""
    fraction, measured_on = share(kind, rate.family, shares)
    return Stage(name, kind, work, round(gflop), round(gflop / (rate.gflops * fraction), 1), share_from=measured_on)


def training_budget(
    config: TrainConfig, net: Models, items, fill_work: int, rate: MachineRate, repeated: int
) -> list[Stage]:
    """What each stage of make train computes, in GFLOP, and its estimate at this machine's rate (fill_work:
    the image-views the cache lacks, features.FillPlan; repeated: the training images an epoch shows again,
    --reviewed-repeats)."""
    top, full = forward_gflop(net.trainable), forward_gflop(net.full)
    trained = len(items["train"]) + repeated
    seen, shares = trained + len(items["validation"]), config.backbone_entry.efficiency
    fill = fill_work * forward_gflop(net.trunk)
    head = config.head_epochs * seen * top
    stages = [
        stage("the cache's fill", f"{fill_work:,} image-views", fill, "fill", rate, shares),
        stage("head", f"{config.head_epochs} epochs x {seen:,} images", head, "head", rate, shares),
    ]
    if config.first_trainable and config.fine_tune_epochs:
        tuned = config.fine_tune_epochs * fine_tuning_epoch_gflop(top, trained, len(items["validation"]))
        work = f"at most {config.fine_tune_epochs} epochs x {seen:,} images"
        stages.append(stage("fine-tuning", work, tuned, "fine-tuning", rate, shares))
    test = len(items["test"])
    return [*stages, stage("test", f"{test:,} images", test * full, "test", rate, shares)]


def table(stages: list[Stage], rate: MachineRate, title: str) -> str:
    """The plan (estimates), and the actual seconds beside them once known."""
    lines = [f"{title} (this machine: {rate})"]
    for s in stages:
        took = "" if s.actual_s is None else f", took {duration(s.actual_s)}"
        borrowed = f" (by a share measured on {s.share_from})" if s.share_from not in ("", rate.family) else ""
        about = f"about {duration(s.estimate_s)}{borrowed}"
        lines.append(f"  {s.name}: {s.work}, {s.gflop / 1000:,.1f} TFLOP, {about}{took}")
    estimate, actual = sum(s.estimate_s for s in stages), [s.actual_s for s in stages if s.actual_s is not None]
    total = f"  all: about {duration(estimate)}"
    if len(actual) == len(stages):
        total += f", took {duration(sum(actual))}"
        total += f" ({sum(actual) / estimate:.2f}x the estimate)" if estimate else ""  # a tiny model: 0 s estimated
    return "\n".join([*lines, total])


def as_json(stages: list[Stage]) -> list[dict]:
    return [asdict(s) for s in stages]


def from_json(rows: list[dict]) -> list[Stage]:
    return [Stage(**row) for row in rows]


def settle(stages: list[Stage], actual_s: dict[str, float], rate: MachineRate) -> dict:
    """Each stage's actual seconds (by its kind) beside its estimate, and the rate's probe: the budget as run.json
    keeps it."""
    for s in stages:
        s.actual_s = round(actual_s[s.kind], 1)
    return {**rate.as_json(), "stages": as_json(stages)}
