"""A camera's record of an image: noise of the size it claims, JPEG, a pure function of the seed."""
import numpy as np
import pytest

from b2v_rnn.data import camera
from b2v_rnn.data.families import GAMMA


def flat(level: int, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), level, dtype=np.uint8)


@pytest.mark.parametrize("level", [40, 128, 220])
def test_the_sensor_noise_is_of_a_camera_s_size_and_unbiased(level):
    stds, means = [], []
    for seed in range(8):
        recorded = camera.sensor(flat(level), np.random.default_rng(seed), GAMMA).astype(np.float64)
        stds.append(recorded.std())
        means.append(recorded.mean())
    # shot noise at 2,000-20,000 photons and up to ~1 grey level of read noise, after g
    assert 0.4 < min(stds) and max(stds) < 4.0, stds
    assert abs(np.mean(means) - level) < 1.0, means


def test_shot_noise_grows_with_the_light_in_linear_light():
    """In linear light a brighter pixel is noisier (Poisson): the linear std at 220 exceeds that at 40."""
    def linear_std(level):
        recorded = camera.sensor(flat(level, 128), np.random.default_rng(0), GAMMA)
        return ((recorded / 255.0) ** GAMMA).std()

    assert linear_std(220) > 2 * linear_std(40)


def test_the_record_is_a_decoded_jpeg_and_a_pure_function_of_the_generator():
    rng = np.random.default_rng(1)
    image = (rng.random((48, 40, 3)) * 255).astype(np.uint8)
    a = camera.observe(image, np.random.default_rng(5), GAMMA)
    b = camera.observe(image, np.random.default_rng(5), GAMMA)
    assert a.dtype == np.uint8 and a.shape == image.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, camera.observe(image, np.random.default_rng(6), GAMMA))
    # JPEG's signature: 8x8 blocks whose borders jump more than their insides
    block = camera.jpeg(np.tile(np.arange(0, 256, 4, dtype=np.uint8)[None, :, None], (64, 1, 3)), 40).astype(float)
    steps = np.abs(np.diff(block, axis=1)).mean(axis=(0, 2))
    assert steps[7::8].mean() > 1.5 * np.delete(steps, np.s_[7::8]).mean()


def test_bad_input_is_named():
    for function in (lambda image: camera.observe(image, np.random.default_rng(0), GAMMA),
                     lambda image: camera.jpeg(image, 90)):
        with pytest.raises(ValueError, match=r"camera: expected uint8 \(H, W, 3\), got float64"):
            function(np.zeros((8, 8, 3)))
