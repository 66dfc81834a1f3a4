"""The streamed forward gives the plain forward's output, keeps only windows of its activations, and stops
between steps when asked."""

import pytest
import torch

from training.config import ModelConfig
from training.stream_forward import Interrupted, stream_forward
from training.unet import UNet3d, fast_layout


@pytest.mark.parametrize("downsample", [((2, 2, 2), (2, 2, 2)), ((1, 2, 2), (2, 2, 2))])
@pytest.mark.parametrize("planes", [1, 3, 16, 64])
@pytest.mark.parametrize("depth", [44, 20])  # 20: a step (level 1, 10 planes) whose halo reaches the last plane
def test_streaming_gives_the_plain_forward(downsample, planes, depth):
    torch.manual_seed(0)
    model = fast_layout(UNet3d(ModelConfig(widths=(4, 8, 16), downsample=downsample)).eval())
    with torch.no_grad():
        model.head.weight *= 50  # a random net's output varies little: make a misplaced plane visible
    x = torch.rand(1, 1, depth, 32, 24)
    with torch.inference_mode():
        plain = model(x)
        streamed = stream_forward(model, x, planes=planes)
    assert streamed.shape == plain.shape and plain.std() > 0.1
    assert torch.allclose(streamed, plain, atol=1e-4)


def test_a_finish_function_sees_each_step_of_logits_and_prepare_each_input_window():
    torch.manual_seed(0)
    model = UNet3d(ModelConfig(widths=(4, 8), downsample=((2, 2, 2),))).eval()
    x = torch.rand(1, 1, 40, 16, 16)
    seen = []

    def finish(logits):
        seen.append(logits.shape[2])
        return (logits > 0).to(torch.uint8)

    prepared = []

    def prepare(planes):
        prepared.append(planes.shape[2])
        return planes.float() / 255

    raw = (x * 255).round().to(torch.uint8)
    out = stream_forward(model, raw, planes=8, finish=finish, prepare=prepare)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 40, 16, 16) and seen == [8] * 5
    assert max(prepared) < 40 and sum(prepared) < 40 * 2, prepared  # windows with their halo, never the whole
    with torch.inference_mode():
        assert torch.equal(out, finish(model(raw.float() / 255)))


def test_it_stops_between_steps_when_asked():
    model = UNet3d(ModelConfig(widths=(4, 8), downsample=((2, 2, 2),))).eval()
    asked = []

    def should_stop():
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(Interrupted):
        stream_forward(model, torch.rand(1, 1, 64, 16, 16), planes=8, should_stop=should_stop)
    assert len(asked) == 3


def test_valid_padding_models_are_refused():
    model = UNet3d(ModelConfig(widths=(4, 8), downsample=((2, 2, 2),), padding="valid")).eval()
    with pytest.raises(ValueError, match="same-padding"):
        stream_forward(model, torch.rand(1, 1, 44, 44, 44))


def test_activation_windows_do_not_grow_with_the_depth():
    """The largest total of planes held at once (every window of the network) is the same for a block 4x deeper."""
    import training.stream_forward as streaming

    torch.manual_seed(0)
    model = fast_layout(UNet3d(ModelConfig(widths=(4, 8, 16), downsample=((2, 2, 2), (2, 2, 2)))).eval())
    held = {}
    for depth in (128, 512):
        windows, peak = [], [0]
        get = streaming._Planes.get

        def counting_get(self, a, b, consumer=0, windows=windows, peak=peak):
            out = get(self, a, b, consumer)
            if self not in windows:
                windows.append(self)
            peak[0] = max(peak[0], sum(w.held for w in windows))
            return out

        streaming._Planes.get = counting_get
        try:
            stream_forward(model, torch.rand(1, 1, depth, 16, 16))
        finally:
            streaming._Planes.get = get
        held[depth] = peak[0]
    # at depth 512: under half of the first level's output (4 channels), which a level-by-level pass holds whole
    assert held[512] == held[128] and held[512] < 512 * 16 * 16 * 4 / 2, held
