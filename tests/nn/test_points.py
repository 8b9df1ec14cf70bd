import math

import pytest
import torch

from vtgkit.nn.points import PointGenerator, regression_ranges


def test_regression_ranges() -> None:
    assert regression_ranges((1, 2, 4, 8)) == [(0.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, math.inf)]
    assert regression_ranges((1,)) == [(0.0, math.inf)]


def test_points_concatenate_present_levels() -> None:
    generator = PointGenerator((1, 2, 4, 8), buffer_size=16)
    points = generator([5, 2, 1, 0])
    assert points.shape == (8, 4)
    assert points[:5, 0].tolist() == [0, 1, 2, 3, 4]
    assert points[5:7].tolist() == [[0, 2, 4, 2], [2, 2, 4, 2]]
    assert points[7].tolist() == [0, 4, 8, 4]
    assert generator.state_dict() == {}  # tables are not saved (spec §11.2)


def test_buffer_size_limit() -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        PointGenerator((1,), buffer_size=4)([5])
    assert torch.equal(PointGenerator((1,), buffer_size=4)([4])[:, 3], torch.ones(4))
