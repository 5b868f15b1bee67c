"""b2v HDF5 datasets: format, reader with augmentation, synthetic scenes, converters.

Training code needs `BlurSequenceDataset` and `default_dataset`; the data tools use the
rest.
"""
from ..errors import UserError
from .augment import NO_AUGMENT, Augment
from .blur import average_frames
from .dataset import BlurSequenceDataset
from .defaults import DEFAULT_SIZE, SPLITS, TEST_SAMPLES, TRAIN_SAMPLES, VAL_SAMPLES, data_dir, default_dataset
from .h5format import FORMAT, VERSION, FileInfo, H5Writer, read_info
from .synthetic import BROAD, HELD_OUT, SceneSettings, generate, render_sequence

__all__ = [
    "Augment", "UserError", "NO_AUGMENT", "average_frames", "BlurSequenceDataset", "DEFAULT_SIZE", "SPLITS",
    "TEST_SAMPLES", "TRAIN_SAMPLES", "VAL_SAMPLES", "data_dir", "default_dataset", "FORMAT",
    "VERSION", "FileInfo", "H5Writer", "read_info", "BROAD", "HELD_OUT", "SceneSettings",
    "generate", "render_sequence",
]
