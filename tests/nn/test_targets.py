import math

import torch

from vtgkit.nn.points import PointGenerator
from vtgkit.nn.targets import assign_batch_targets, assign_point_targets


def test_centre_sampling_range_and_shortest_window() -> None:
    points = PointGenerator((1, 2), buffer_size=8)([6, 3])  # stride 1 at t = 0..5, stride 2 at t = 0, 2, 4
    windows = torch.tensor([[1.0, 4.0], [2.0, 3.0], [math.inf, math.inf]])
    cls_target, reg_target = assign_point_targets(points, windows, sample_radius=1.5)
    # stride 1, range [0, 2]: t=2 lies in both windows' centre regions, only [2, 3] has max(d0, d1) ≤ 2 → matched;
    # t=3: window [1,4] has max(2,1)=2 in range, [2,3] max(1,0)=1 → both eligible, the shorter [2,3] wins.
    assert cls_target[:6].tolist() == [0, 0, 1, 1, 0, 0]
    assert reg_target[2].tolist() == [0.0, 1.0]
    assert reg_target[3].tolist() == [1.0, 0.0]
    # stride 2, range [2, ∞): t=2 in [1,4] (centre 2.5, region [1, 4]): max(1, 2) = 2 → eligible, while [2,3] has
    # max(0, 1) = 1 < 2; t=4 in [1,4]: max(3, 0) = 3 → eligible (region ends are inclusive).
    assert cls_target[6:].tolist() == [0, 1, 1]
    assert reg_target[7].tolist() == [0.5, 1.0]
    assert reg_target[8].tolist() == [1.5, 0.0]
    # no eligible window: matched index 0
    assert reg_target[0].tolist() == [-1.0, 4.0]


def test_batch_targets_use_fps() -> None:
    points = PointGenerator((1,), buffer_size=8)([4])
    windows = torch.tensor([[[2.0, 4.0]], [[math.inf, math.inf]]])
    cls_target, _ = assign_batch_targets(points, windows, torch.tensor([0.5, 0.5]))
    assert cls_target.tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]


def test_batch_targets_equal_the_one_sample_assignment_bit_for_bit() -> None:
    # The batched assignment must be each sample's own (padding rows, several windows, different fps per sample).
    points = PointGenerator((1, 2, 4, 8))([30, 15, 7, 3])
    generator = torch.Generator().manual_seed(0)
    windows = torch.sort(torch.rand(4, 3, 2, generator=generator) * 50, dim=-1).values
    windows[1, 1:] = math.inf
    windows[3, 2:] = math.inf
    fps = torch.tensor([0.5, 1.0, 0.7, 2.0])
    for radius in (1.5, 0.0):
        cls_target, reg_target = assign_batch_targets(points, windows, fps, radius)
        assert cls_target.sum() > 0
        for index in range(4):
            alone = assign_point_targets(points, windows[index] * fps[index], radius)
            assert torch.equal(cls_target[index], alone[0]) and torch.equal(reg_target[index], alone[1])
