"""``SynthModel``: the whole synthetic world of a config, before any voxel is rendered.

Neurons (skeletons with core radii), synapses with their vesicles, mitochondria and
nuclei: small arrays (a few MB for a 512^3 volume), built once from the config. Blocks
render voxels from it; a worker process keeps the models it has received (by config
digest), so its k-d tree is built once per process.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass

import numpy as np

from .config import SynthConfig
from .labels import LabelField
from .neurons import Skeletons, grow_neurons
from .organelles import Mitochondria, Nuclei, find_nuclei, place_mitochondria
from .synapses import SynapseSet, place_synapses

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthModel:
    config: SynthConfig  # resolved: no None left
    skeletons: Skeletons
    synapses: SynapseSet
    mitochondria: Mitochondria
    nuclei: Nuclei

    @functools.cached_property
    def field(self) -> LabelField:
        sk = self.skeletons
        return LabelField(sk.position_nm, sk.radius_nm, sk.neuron)

    @functools.cached_property
    def brightness(self) -> np.ndarray:
        """Cytoplasm brightness (0..1) by neuron id; index 0 unused."""
        rng = np.random.default_rng([self.config.seed, 7])
        kinds = np.asarray(self.skeletons.kinds)
        base = np.where(kinds == "axon", 0.56, np.where(kinds == "body", 0.6, 0.6))
        spread = np.where(kinds == "axon", 0.08, 0.05)
        return np.r_[0.56, np.clip(base + spread * rng.normal(size=len(kinds)), 0.32, 0.82)].astype(np.float32)

    def __reduce__(self):  # the arrays travel, not the k-d tree; a worker keeps one model per config
        return (_restore, (self.config, self.skeletons, self.synapses, self.mitochondria, self.nuclei))


def build_model(config: SynthConfig) -> SynthModel:
    """Grow neurons, place synapses, mitochondria and nuclei for ``config`` (deterministic)."""
    cfg = config.resolve()
    seeds = np.random.SeedSequence([cfg.seed, 20_26]).spawn(3)
    skeletons = grow_neurons(cfg, np.random.default_rng(seeds[0]))
    model = SynthModel(cfg, skeletons, SynapseSet.empty(0.0), Mitochondria(*(np.zeros(0, np.int64),) * 3, np.zeros(0)),
                       find_nuclei(skeletons))
    synapses = place_synapses(cfg, skeletons, model.field, np.random.default_rng(seeds[1]))
    mitochondria = place_mitochondria(cfg, skeletons, np.random.default_rng(seeds[2]), avoid_nm=synapses.centre_nm)
    final = SynthModel(cfg, skeletons, synapses, mitochondria, model.nuclei)
    final.__dict__["field"] = model.field  # reuse the k-d tree
    logger.info("synthetic model: %d neurons, %d nodes, %d synapses (%d partners), %d mitochondria",
                skeletons.num_neurons, len(skeletons.neuron), len(synapses), len(synapses.synapse_id),
                len(mitochondria))
    return final


_CACHE: dict[str, SynthModel] = {}
_LOCK = threading.Lock()


def model_for(config: SynthConfig) -> SynthModel:
    """The model of ``config``, built once per process (the last few are kept)."""
    key = config.digest()
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = build_model(config)
            if len(_CACHE) >= 4:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = model
        return model


def _restore(config, skeletons, synapses, mitochondria, nuclei) -> SynthModel:
    key = config.digest()
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = SynthModel(config, skeletons, synapses, mitochondria, nuclei)
            if len(_CACHE) >= 4:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = model
        return model
