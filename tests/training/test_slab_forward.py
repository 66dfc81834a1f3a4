"""The slab forward gives the plain forward's output, and stops between slabs when asked."""

import pytest
import torch

from training.config import ModelConfig
from training.slab_forward import Interrupted, slab_forward
from training.unet import UNet3d, fast_layout


@pytest.mark.parametrize("downsample", [((2, 2, 2), (2, 2, 2)), ((1, 2, 2), (2, 2, 2))])
@pytest.mark.parametrize("slabs", [1, 3, 16])
@pytest.mark.parametrize("depth", [44, 20])  # 20: a slab (level 1, 10 planes) whose halo reaches the last plane
def test_slabs_give_the_plain_forward(downsample, slabs, depth):
    torch.manual_seed(0)
    model = fast_layout(UNet3d(ModelConfig(widths=(4, 8, 16), downsample=downsample)).eval())
    with torch.no_grad():
        model.head.weight *= 50  # a random net's output varies little: make a misplaced plane visible
    x = torch.rand(1, 1, depth, 32, 24)
    with torch.inference_mode():
        plain = model(x)
        slabbed = slab_forward(model, x, slabs=slabs)
    assert slabbed.shape == plain.shape and plain.std() > 0.1
    assert torch.allclose(slabbed, plain, atol=1e-4)


def test_a_finish_function_sees_each_slab_of_logits():
    torch.manual_seed(0)
    model = UNet3d(ModelConfig(widths=(4, 8), downsample=((2, 2, 2),))).eval()
    x = torch.rand(1, 1, 40, 16, 16)
    seen = []

    def finish(logits):
        seen.append(logits.shape[2])
        return (logits > 0).to(torch.uint8)

    out = slab_forward(model, x, slabs=5, finish=finish)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 40, 16, 16) and seen == [8] * 5


def test_it_stops_between_slabs_when_asked():
    model = UNet3d(ModelConfig(widths=(4, 8), downsample=((2, 2, 2),))).eval()
    asked = []

    def should_stop():
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(Interrupted):
        slab_forward(model, torch.rand(1, 1, 64, 16, 16), slabs=8, should_stop=should_stop)
    assert len(asked) == 3


def test_valid_padding_models_are_refused():
    model = UNet3d(ModelConfig(widths=(4, 8), downsample=((2, 2, 2),), padding="valid")).eval()
    with pytest.raises(ValueError, match="same-padding"):
        slab_forward(model, torch.rand(1, 1, 44, 44, 44))
