"""No periodic grid on real photographs (docs/design.md §2.2): `metrics.grid_peak_ratio` and the models."""
import numpy as np
import pytest
import torch
from skimage import data
from skimage.filters import gaussian

from b2v_rnn.checkpoint import default_checkpoint, load_model
from b2v_rnn.metrics import grid_peak_ratio


def photo(size: int = 160) -> torch.Tensor:
    return torch.tensor(data.astronaut()[:size, :size] / 255.0, dtype=torch.float32).permute(2, 0, 1)


def test_a_non_square_image_is_measured():  # the neighbour windows once indexed rows with columns
    x = photo(160)[:, :120]
    assert 0 < grid_peak_ratio(x, 4) < 60


def test_a_photograph_and_its_blur_have_no_grid():
    x = photo()
    blurred = torch.tensor(gaussian(x.permute(1, 2, 0).numpy(), sigma=1.5, channel_axis=-1)).permute(2, 0, 1)
    for period in (2, 4, 5, 10):
        assert grid_peak_ratio(x, period) < 60
        assert grid_peak_ratio(blurred - x, period) < 60


@pytest.mark.parametrize("period", [2, 4, 5])
def test_a_faint_pixel_shuffle_grid_stands_out(period):
    x = photo()
    pattern = torch.zeros(period, period)
    pattern[0, 0] = 2 / 255  # one phase of every period x period cell 2 grey levels brighter
    grid = pattern.repeat(x.shape[1] // period + 1, x.shape[2] // period + 1)[: x.shape[1], : x.shape[2]]
    assert grid_peak_ratio(grid.expand(3, -1, -1), period) > 1000  # what a model adds: frame - input
    assert grid_peak_ratio(x + grid, period) > 10 * grid_peak_ratio(x, period)  # measured 40-830x


def test_the_shipped_weights_add_no_grid_to_a_photograph():
    """The earlier weights (pixel-shuffle head) measured 2,900-16,300 at periods 2 and 4
    on the sample photograph; these (smooth head) 0.4-7.9, under the photograph's own 18-32."""
    model, _ = load_model(default_checkpoint())
    x = photo()
    with torch.no_grad():
        frames = model.extract(x[None], 7)[0]
    for period in (2, 4, 5):
        own = grid_peak_ratio(x, period)
        for frame in frames:
            assert grid_peak_ratio(frame - x, period) < max(10 * own, 60), (period, np.round(own, 1))


@pytest.mark.parametrize("head", ["shuffle", "smooth"])
def test_a_flat_image_gets_a_flat_correction_only_from_the_smooth_head(head):
    """The structural cause of the grid (Sugawara et al. 2019's criterion for sub-pixel layers):
    with any weights, a flat image must get a flat correction away from the borders. The smooth
    head passes whatever the weights (bilinear upsampling has no per-phase parameters); the
    paper's shuffle head, with random weights, paints a pattern of period 4 on a grey image."""
    from b2v_rnn.models import MiddleNet
    from b2v_rnn.models.presets import PRESETS

    torch.manual_seed(0)
    net = MiddleNet(**{**PRESETS["tiny"]["middle"], "head": head})
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
        flat = torch.full((1, 3, 160, 160), 0.5)
        correction = (net(flat) - flat)[..., 56:-56, 56:-56]  # beyond the zero padding's reach (52 px)
    spread = (correction - correction.mean((-2, -1), keepdim=True)).abs().max().item()
    if head == "smooth":
        assert spread < 1e-5
    else:
        assert spread > 0.05
        assert grid_peak_ratio(correction[0], 4) > 1000
