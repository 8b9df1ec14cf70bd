import pytest
import torch

from vtgkit.nn.pyramid import ConvPyramid, pyramid_level_lengths


def test_level_lengths_drop_levels_longer_than_the_sequence() -> None:
    assert pyramid_level_lengths(9, (1, 2, 4, 8)) == [9, 4, 2, 1]
    assert pyramid_level_lengths(5, (1, 2, 4, 8)) == [5, 2, 1, 0]
    assert pyramid_level_lengths(2, (1, 2, 4, 8)) == [2, 1, 0, 0]
    assert pyramid_level_lengths(1, (1, 2, 4, 8)) == [1, 0, 0, 0]


def test_official_key_names() -> None:
    keys = set(ConvPyramid(4, (1, 2, 4, 8)).state_dict())
    expected = {f"blocks.{level}.{index}.{p}" for level, indices in ((1, (1, 3)), (2, (1, 3, 6, 8)),
                                                                      (3, (1, 3, 6, 8, 11, 13)))
                for index in indices for p in ("weight", "bias")}
    assert keys == expected


def test_in_place_relu_and_independent_branches() -> None:
    pyramid = ConvPyramid(4, (1, 2, 4))
    x = torch.randn(2, 5, 4)
    original = x.clone()
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    levels, masks = pyramid(x, mask)
    assert torch.equal(x, original.relu())  # spec §3.2: the caller's tensor is ReLU'd in place
    assert levels[0] is x
    assert [level.shape[1] for level in levels] == [5, 2, 1]
    # stride 4 has its own two stages fed with ReLU(x), not the stride-2 level
    manual = pyramid.blocks[2](original.relu())
    torch.testing.assert_close(levels[2], manual)
    assert masks[1].tolist() == [[1, 1], [1, 1]]  # max-pool over windows of 2: clip 3 is padding, clip 2 valid
    assert masks[2].tolist() == [[1], [1]]


def test_rejects_non_power_of_two() -> None:
    with pytest.raises(ValueError, match="powers of two"):
        ConvPyramid(4, (1, 3))
