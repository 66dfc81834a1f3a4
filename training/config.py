"""Model and training configuration: frozen dataclasses with a typed schema, read from YAML or TOML.

Every field's type and range is checked when a config is made, from a file or in Python
(:mod:`training.schema`): a wrong type, a value out of range or an unknown key is refused
with one line naming the file, the key, the value and what was expected.

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
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from .precision import PRECISIONS
from .schema import (
    Bool,
    ConfigError,
    Fraction,
    Int,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Shape,
    Text,
    VoxelSize,
    ZRange,
    build,
    load_mapping,
    schema,
)

__all__ = ["Config", "ConfigError", "ModelConfig", "TrainConfig", "VolumeSpec", "config_from_dict", "config_to_dict",
           "load_config", "load_mapping"]

NEIGHBOUR_OFFSETS = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))
OUTPUTS = ("affinities", "synapses", "clefts")
SYNAPSE_CHANNELS = ("cleft", "pre_side", "post_side")


def _one_or_more(value):
    return [value] if isinstance(value, str) else value  # outputs = "synapses" means ["synapses"]


Factors = Annotated[tuple[PositiveInt, PositiveInt, PositiveInt], Field(description="3 integers >= 1 (z, y, x)")]
Offset = Annotated[tuple[Int, Int, Int], Field(description="3 integers (z, y, x)")]
Outputs = Annotated[tuple[Literal[OUTPUTS], ...], BeforeValidator(_one_or_more),
                    Field(min_length=1, description=f"a non-empty list of distinct heads from {list(OUTPUTS)}")]


@schema
class ModelConfig:
    """A 3D U-Net predicting affinities, synapses, or both from one trunk.

    ``widths[i]`` feature maps at level i; ``downsample[i]`` the pooling factor between
    level i and i+1 (so ``len(downsample) == len(widths) - 1``); ``offsets`` the affinity
    neighbourhood (nearest neighbours by default; add long-range ones like (-3, 0, 0)).
    ``padding``: "same" (output shape = input shape) or "valid" (no padding, smaller output).
    ``outputs``: the heads, in channel order: "affinities" (one channel per offset) and/or
    "synapses" (three channels: cleft probability, pre-side and post-side probability).
    """

    in_channels: PositiveInt = 1
    widths: Annotated[tuple[PositiveInt, ...], Field(min_length=1, description="a non-empty list of integers > 0")] \
        = (12, 24, 48)
    downsample: Annotated[tuple[Factors, ...], Field(description="a list of (z, y, x) factors >= 1")] \
        = ((1, 2, 2), (1, 2, 2))
    offsets: Annotated[tuple[Offset, ...], Field(description="a list of (z, y, x) offsets")] = NEIGHBOUR_OFFSETS
    padding: Literal["same", "valid"] = "same"
    outputs: Outputs = ("affinities",)
    # "unet2d": a 2D U-Net per section with z_context neighbouring sections on each side as input
    # channels (training.unet2d; for anisotropic ssTEM), "unet3d": the 3D U-Net (training.unet)
    network: Literal["unet3d", "unet2d"] = "unet3d"
    z_context: NonNegativeInt = 0
    # a training-only head of local shape descriptors (Sheridan et al. 2022, multitask LSDs): a 1x1x1
    # convolution next to the affinity head, trained with an MSE loss (train.lsd_sigma_nm, train.lsd_weight)
    # and dropped from the final model.pt: prediction gives the same channels as without it
    lsd_head: Bool = False

    def __post_init__(self):
        if self.lsd_head and self.network != "unet3d":
            raise ValueError(f"lsd_head = true needs network 'unet3d' (got {self.network!r})")
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"outputs {list(self.outputs)} must be a non-empty list of distinct heads from "
                             f"{list(OUTPUTS)}")
        if len(self.downsample) != len(self.widths) - 1:
            raise ValueError(
                f"downsample has {len(self.downsample)} factors but widths has {len(self.widths)} levels; "
                "expected one factor (z,y,x) between each pair of levels"
            )

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
            elif output == "clefts":
                names.append("cleft")
            else:
                names += list(SYNAPSE_CHANNELS)
        return tuple(names)

    def channels_of(self, output: str) -> slice:
        """The channel slice of one head (``"affinities"`` or ``"synapses"``)."""
        if output not in self.outputs:
            raise ValueError(f"the model has no {output!r} head; its heads are {list(self.outputs)}")
        start = 0
        for name in self.outputs:
            size = {"affinities": len(self.offsets), "clefts": 1}.get(name, len(SYNAPSE_CHANNELS))
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


def _check_z_range(value, name: str) -> None:
    if value is not None and value[0] >= value[1]:
        raise ValueError(f"{name} {list(value)} is empty: expected [begin, end) with begin < end")


@schema
class VolumeSpec:
    """One training volume: raw and labels (volume URLs or ingest specs like FILE.h5:/raw)."""

    raw: Text
    voxel_size_nm: VoxelSize
    # neuron labels (or a membrane map); a model whose only head is "clefts" needs none
    labels: Text | None = None
    # z range [begin, end) of the labelled part held out for validation (None: no validation)
    validation_slab_z: ZRange | None = None
    # z range [begin, end) of labels that exist (FIB-25: labels cover z < 160 only)
    labelled_z: ZRange | None = None
    # synapse heads: cleft labels (synapse ids, 0 elsewhere) and a Parquet table with one row
    # per (synapse_id, pre_id, post_id) giving each synapse's pre and post neurons in ``labels``
    # (the synthetic generator writes both: clefts.zarr and synapses.parquet)
    clefts: Text | None = None
    synapses: Text | None = None

    def __post_init__(self):
        _check_z_range(self.validation_slab_z, "validation_slab_z")
        _check_z_range(self.labelled_z, "labelled_z")


@schema
class TrainConfig:
    out_dir: Text
    volumes: Annotated[tuple[VolumeSpec, ...],
                       Field(min_length=1, description="at least one [[train.volumes]] with raw and labels")]
    voxel_size_nm: VoxelSize = (10, 10, 10)
    steps: PositiveInt = 1000
    batch_size: PositiveInt = 1
    patch_shape: Shape = (32, 96, 96)
    learning_rate: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 1e-4
    checkpoint_every: PositiveInt = 200
    validate_every: PositiveInt = 100
    min_labelled_fraction: Fraction = 0.5
    seed: NonNegativeInt = 0
    augment: bool = True
    # "auto" | "fp32" | "bf16" | "fp16": see training.precision (auto: bf16 only where it is native and faster)
    precision: Literal[PRECISIONS] = "auto"
    threads: PositiveInt | None = None
    # synapse heads: pre/post-side targets are the partner voxels within this distance of the cleft
    synapse_side_nm: PositiveFloat = 40.0
    # share of patches centred (with jitter) on a cleft voxel: synapses are rare
    synapse_patch_fraction: Fraction = 0.7
    # start from another model's weights (every tensor of the same name and shape), e.g. a
    # synapse model from the boundary model trained on the same kind of data
    init_from: Text | None = None
    # class balancing: each class's per-voxel weight is capped at this (20: rare positives weigh up to
    # 40x the negatives; a cleft model calibrated closer to its true rate uses ~2)
    balance_clip: PositiveFloat = 20.0
    # weight of a soft Dice term added to the BCE (0: BCE alone)
    dice_weight: NonNegativeFloat = 0.0
    # "constant" learning rate, or "cosine" decay from learning_rate to 0 over the steps
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # model.lsd_head: the Gaussian window (sigma, nm) of the local shape descriptor targets, and the weight of
    # their MSE loss beside the affinity loss
    lsd_sigma_nm: PositiveFloat = 80.0
    lsd_weight: PositiveFloat = 1.0


@schema
class Config:
    model: ModelConfig
    train: TrainConfig | None = None


def config_from_dict(values: dict, base_dir: str = ".", source: str | None = None) -> Config:
    """The :class:`Config` of a config file's content ``values``; relative paths are relative to ``base_dir``.
    ``source`` (the file) is named in errors."""
    values = dict(values)
    values.setdefault("model", {})
    train = values.get("train")
    if isinstance(train, dict):
        train = values["train"] = dict(train)
        if "mixed_precision" in train:  # configs before precision existed: true meant bf16 autocast everywhere
            legacy = train.pop("mixed_precision")
            train.setdefault("precision", "auto" if legacy else "fp32")
        train["out_dir"] = _resolve(train.get("out_dir", "runs/train"), base_dir)
        train["init_from"] = _resolve(train.get("init_from"), base_dir)
        if isinstance(train.get("volumes"), list):
            train["volumes"] = [{**v, **{k: _resolve(v.get(k), base_dir) for k in ("raw", "labels", "clefts",
                                                                                   "synapses") if k in v}}
                                if isinstance(v, dict) else v for v in train["volumes"]]
    return build(Config, values, source)


def _resolve(path, base_dir: str):
    if not isinstance(path, str) or not path or "://" in path or os.path.isabs(path):
        return path  # not a path (None, or a mistake the schema names)
    return os.path.normpath(os.path.join(base_dir, path))


def load_config(path: str) -> Config:
    """Read a YAML or TOML training config; relative paths are relative to the file."""
    return config_from_dict(load_mapping(path), base_dir=os.path.dirname(os.path.abspath(path)), source=path)


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)
