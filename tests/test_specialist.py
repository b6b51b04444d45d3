import pytest
import torch

from scsam_lite.errors import ConfigError
from scsam_lite.specialist import build_specialist, count_parameters


def test_unet_shapes_and_size():
    net = build_specialist("unet", in_channels=1, num_classes=2)
    assert net(torch.rand(2, 1, 32, 48)).shape == (2, 2, 32, 48)
    # the SSL4MIS-shaped U-Net (16-256 channels) has about 1.8-2.0 M parameters
    assert 1.7e6 < count_parameters(net) < 2.1e6
    with pytest.raises(ValueError, match="divisible by 16"):
        net(torch.rand(1, 1, 30, 32))


def test_unknown_specialist_suggests():
    with pytest.raises(ConfigError, match="did you mean 'unet'"):
        build_specialist("unett")
