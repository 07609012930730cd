"""What served a run: the model, CPU or GPU, GPUs per endpoint, and whether its $ figures mean anything.

A run on the CPU tiny model (the project's rehearsal server, agent/serving.py) measures the pipeline, not an
H100: its node-seconds are seconds of this CPU machine, so cost.json and the report call it a rehearsal and
leave its $ figures unpriced (null) instead of pricing CPU seconds at an H100 rate.

The device is declared (`proofpilot pilot --served-on cpu|gpu`, the demo and the benches say "cpu"); with
`auto` the project's tiny model (served name `tinyqwen`, or a model path ending in `tiny-qwen2`) is taken as
CPU, and any other model as GPU *assumed* from `--gpus-per-endpoint`: the label says it was not verified.
"""

from __future__ import annotations

from dataclasses import dataclass

from proofpilot.core.errors import ConfigError

SERVED_ON = ("auto", "cpu", "gpu")
TINY_MODEL_NAMES = ("tinyqwen",)  # agent/serving.py SERVED_MODEL_NAME
TINY_MODEL_DIR = "tiny-qwen2"  # deploy/vllm/make_tiny_model.py's default folder
REHEARSAL_BASIS = (
    "not priced: a rehearsal on {device} ({model}); its node-seconds are of this machine, not of an H100 "
    "node, so no $/GPU-hour applies"
)


@dataclass(frozen=True)
class ServedBy:
    """The serving side of a run, as cost.json and the report state it."""

    model: str | None  # the served model name the pilot asked for
    device: str  # "cpu" | "gpu"
    device_source: str  # "declared" (--served-on, the demo, a bench) | "assumed" (auto, not verified)
    gpus_per_endpoint: int  # 0 on CPU
    n_endpoints: int
    rehearsal: bool  # CPU or the tiny test model: not a cost of the production model on H100s
    priced: bool  # $ figures computed (False for a rehearsal)

    @property
    def label(self) -> str:
        """One line for a report: what served the run and how far its figures carry."""
        where = (
            f"{self.n_endpoints} CPU endpoint(s)"
            if self.device == "cpu"
            else f"{self.n_endpoints} endpoint(s) of {self.gpus_per_endpoint} GPU(s)"
        )
        model = self.model or "unknown model"
        text = f"served by {model} on {where}"
        if self.device_source == "assumed":
            text += " (GPU assumed from --gpus-per-endpoint, not verified; declare with --served-on)"
        if self.rehearsal:
            text += ": a rehearsal, not an H100 cost; $ figures are not priced"
        return text


def is_tiny_model(model: str | None) -> bool:
    """The project's CPU test model, by its served name or its folder."""
    if not model:
        return False
    return model in TINY_MODEL_NAMES or model.rstrip("/").endswith(TINY_MODEL_DIR)


def served_by(model: str | None, served_on: str, gpus_per_endpoint: int, n_endpoints: int) -> ServedBy:
    """The record for a run (ConfigError, one line, for an unknown `served_on`)."""
    if served_on not in SERVED_ON:
        raise ConfigError(f"--served-on must be one of {', '.join(SERVED_ON)}, got {served_on!r}")
    tiny = is_tiny_model(model)
    if served_on == "auto":
        device, source = ("cpu", "assumed") if tiny else ("gpu", "assumed")
    else:
        device, source = served_on, "declared"
    rehearsal = device == "cpu" or tiny
    return ServedBy(
        model=model,
        device=device,
        device_source=source,
        gpus_per_endpoint=0 if device == "cpu" else gpus_per_endpoint,
        n_endpoints=n_endpoints,
        rehearsal=rehearsal,
        priced=not rehearsal,
    )


def rehearsal_basis(served: ServedBy) -> str:
    """The $ basis text of an unpriced (rehearsal) run."""
    return REHEARSAL_BASIS.format(device=served.device.upper(), model=served.model or "unknown model")
