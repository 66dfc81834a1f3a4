"""Model and training configuration: frozen dataclasses, read from YAML or TOML.

A training config file looks like (TOML)::

    [model]
    widths = [12, 24, 48]
    downsample = [[1, 2, 2], [1, 2, 2]]
    padding = "same"

    [train]
    out_dir = "runs/fib25"
    steps = 2000
    patch_shape = [32, 96, 96]
    voxel_size_nm = [10, 10, 10]

    [[train.volumes]]
    raw = "../shared/data/fib25/training_sample2.h5:/raw"
    labels = "../shared/data/fib25/training_sample2.h5:/labels"
    voxel_size_nm = [10, 10, 10]
    validation_slab_z = [130, 160]
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

NEIGHBOUR_OFFSETS = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))
OUTPUTS = ("affinities", "synapses")
SYNAPSE_CHANNELS = ("cleft", "pre_side", "post_side")


@dataclass(frozen=True)
class ModelConfig:
    """A 3D U-Net predicting affinities, synapses, or both from one trunk.

    ``widths[i]`` feature maps at level i; ``downsample[i]`` the pooling factor between
    level i and i+1 (so ``len(downsample) == len(widths) - 1``); ``offsets`` the affinity
    neighbourhood (nearest neighbours by default; add long-range ones like (-3, 0, 0)).
    ``padding``: "same" (output shape = input shape) or "valid" (no padding, smaller output).
    ``outputs``: the heads, in channel order: "affinities" (one channel per offset) and/or
    "synapses" (three channels: cleft probability, pre-side and post-side probability).
    """

    in_channels: int = 1
    widths: tuple[int, ...] = (12, 24, 48)
    downsample: tuple[tuple[int, int, int], ...] = ((1, 2, 2), (1, 2, 2))
    offsets: tuple[tuple[int, int, int], ...] = NEIGHBOUR_OFFSETS
    padding: str = "same"
    outputs: tuple[str, ...] = ("affinities",)

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "downsample", tuple(tuple(int(f) for f in d) for d in self.downsample))
        object.__setattr__(self, "offsets", tuple(tuple(int(o) for o in off) for off in self.offsets))
        object.__setattr__(self, "outputs", (self.outputs,) if isinstance(self.outputs, str) else tuple(self.outputs))
        if not self.outputs or len(set(self.outputs)) != len(self.outputs) or not set(self.outputs) <= set(OUTPUTS):
            raise ValueError(f"model.outputs {list(self.outputs)} must be a non-empty list of distinct heads from "
                             f"{list(OUTPUTS)}")
        if len(self.downsample) != len(self.widths) - 1:
            raise ValueError(
                f"model.downsample has {len(self.downsample)} factors but model.widths has {len(self.widths)} levels; "
                "expected one factor (z,y,x) between each pair of levels"
            )
        if self.padding not in ("same", "valid"):
            raise ValueError(f"model.padding {self.padding!r} is not one of 'same', 'valid'")
        if any(len(d) != 3 or min(d) < 1 for d in self.downsample):
            raise ValueError(f"model.downsample {self.downsample} must be (z,y,x) factors >= 1")

    @property
    def out_channels(self) -> int:
        return len(self.channel_names)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """One name per output channel: ``affinity_<dz>_<dy>_<dx>`` per offset, then the synapse channels."""
        names: list[str] = []
        for output in self.outputs:
            if output == "affinities":
                names += ["affinity_" + "_".join(str(o) for o in off) for off in self.offsets]
            else:
                names += list(SYNAPSE_CHANNELS)
        return tuple(names)

    def channels_of(self, output: str) -> slice:
        """The channel slice of one head (``"affinities"`` or ``"synapses"``)."""
        if output not in self.outputs:
            raise ValueError(f"the model has no {output!r} head; its heads are {list(self.outputs)}")
        start = 0
        for name in self.outputs:
            size = len(self.offsets) if name == "affinities" else len(SYNAPSE_CHANNELS)
            if name == output:
                return slice(start, start + size)
            start += size
        raise AssertionError("unreachable")

    @property
    def total_downsample(self) -> tuple[int, int, int]:
        total = [1, 1, 1]
        for d in self.downsample:
            total = [t * f for t, f in zip(total, d)]
        return tuple(total)


@dataclass(frozen=True)
class VolumeSpec:
    """One training volume: raw and labels (volume URLs or ingest specs like FILE.h5:/raw)."""

    raw: str
    labels: str
    voxel_size_nm: tuple[int, int, int]
    # z range [begin, end) of the labelled part held out for validation (None: no validation)
    validation_slab_z: tuple[int, int] | None = None
    # z range [begin, end) of labels that exist (FIB-25: labels cover z < 160 only)
    labelled_z: tuple[int, int] | None = None
    # synapse heads: cleft labels (synapse ids, 0 elsewhere) and a Parquet table with one row
    # per (synapse_id, pre_id, post_id) giving each synapse's pre and post neurons in ``labels``
    # (the synthetic generator writes both: clefts.zarr and synapses.parquet)
    clefts: str | None = None
    synapses: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    out_dir: str
    volumes: tuple[VolumeSpec, ...]
    voxel_size_nm: tuple[int, int, int] = (10, 10, 10)
    steps: int = 1000
    batch_size: int = 1
    patch_shape: tuple[int, int, int] = (32, 96, 96)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    checkpoint_every: int = 200
    validate_every: int = 100
    min_labelled_fraction: float = 0.5
    seed: int = 0
    augment: bool = True
    # "auto" | "fp32" | "bf16" | "fp16": see training.precision (auto: bf16 only where it is native and faster)
    precision: str = "auto"
    threads: int | None = None
    # synapse heads: pre/post-side targets are the partner voxels within this distance of the cleft
    synapse_side_nm: float = 40.0
    # share of patches centred (with jitter) on a cleft voxel: synapses are rare
    synapse_patch_fraction: float = 0.7
    # start from another model's weights (every tensor of the same name and shape), e.g. a
    # synapse model from the boundary model trained on the same kind of data
    init_from: str | None = None

    def __post_init__(self):
        from .precision import check_precision

        check_precision(self.precision, "train.precision")


@dataclass(frozen=True)
class Config:
    model: ModelConfig
    train: TrainConfig | None = None


def _tuple_fields(cls, values: dict) -> dict:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; known keys: {sorted(known)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def config_from_dict(values: dict, base_dir: str = ".") -> Config:
    model = ModelConfig(**_tuple_fields(ModelConfig, values.get("model", {})))
    train = None
    if "train" in values:
        t = dict(values["train"])
        volumes = []
        for v in t.pop("volumes", []):
            spec = _tuple_fields(VolumeSpec, v)
            for key in ("raw", "labels", "clefts", "synapses"):
                if spec.get(key):
                    spec[key] = _resolve(spec[key], base_dir)
            volumes.append(VolumeSpec(**spec))
        if not volumes:
            raise ValueError("train.volumes is empty: give at least one [[train.volumes]] with raw and labels")
        if "mixed_precision" in t:  # configs before precision existed: true meant bf16 autocast everywhere
            legacy = t.pop("mixed_precision")
            t.setdefault("precision", "auto" if legacy else "fp32")
        t = _tuple_fields(TrainConfig, t)
        t["out_dir"] = _resolve(t.get("out_dir", "runs/train"), base_dir)
        if t.get("init_from"):
            t["init_from"] = _resolve(t["init_from"], base_dir)
        train = TrainConfig(volumes=tuple(volumes), **{k: v for k, v in t.items() if k != "volumes"})
    return Config(model=model, train=train)


def _resolve(path: str, base_dir: str) -> str:
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


def load_mapping(path: str) -> dict:
    """The key/value content of a YAML (.yaml/.yml) or TOML (.toml) file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    with open(path, "rb") as f:
        text = f.read()
    if path.endswith(".toml"):
        import tomllib

        return tomllib.loads(text.decode())
    if path.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text) or {}
    raise ValueError(f"config {path!r} must end in .toml, .yaml or .yml")


def load_config(path: str) -> Config:
    """Read a YAML or TOML training config; relative paths are relative to the file."""
    return config_from_dict(load_mapping(path), base_dir=os.path.dirname(os.path.abspath(path)))


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)
