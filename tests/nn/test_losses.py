import math

import torch
import torch.nn.functional as F

from vtgkit.nn.losses import dynamic_bce_loss, info_nce_loss, masked_l1_loss, sampled_nce_loss, sigmoid_focal_loss


def test_focal_loss_has_no_alpha_and_averages_over_valid_points() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0])
    targets = torch.tensor([1.0, 0.0, 1.0])
    mask = torch.tensor([1, 1, 0])
    p = torch.sigmoid(torch.tensor(2.0)).item()
    expected = (math.log(2) * 0.5**2 + (-math.log(1 - p)) * p**2) / 2
    assert math.isclose(sigmoid_focal_loss(logits, targets, mask).item(), expected, rel_tol=1e-6)


def test_masked_l1_divides_by_mask_sum() -> None:
    pred = torch.tensor([[1.0, 2.0], [5.0, 5.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert masked_l1_loss(pred, target, mask).item() == 1.5


def test_dynamic_bce() -> None:
    logits = torch.tensor([[0.5, -0.5, 3.0]])
    targets = torch.tensor([[0.2, 0.7, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    expected = F.binary_cross_entropy_with_logits(logits[:, :2], targets[:, :2])
    torch.testing.assert_close(dynamic_bce_loss(logits, targets, mask), expected)


def test_sampled_nce_row_and_column_terms() -> None:
    video = torch.randn(2, 3, 4)
    query = torch.randn(2, 1, 4)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    saliency = torch.tensor([[0.5, 0.9, 0.1], [0.3, 0.3, 0.0]])
    pos = torch.tensor([0, 1])
    scale = 1 / 0.07
    sim = F.cosine_similarity(video, query, dim=-1) * scale
    # row 0: clip 1 is more salient than the positive → excluded; row 1: clip 2 is padding → excluded
    row0 = -(sim[0, 0] - torch.logsumexp(sim[0, [0, 2]], 0))
    row1 = -(sim[1, 1] - torch.logsumexp(sim[1, [0, 1]], 0))
    # column p_0 = 0: samples 0 and 1 at clip 0 (allowed for both); column p_1 = 1: sample 0 at clip 1 is excluded
    col0 = -(sim[0, 0] - torch.logsumexp(sim[:, 0], 0))
    col1 = -(sim[1, 1] - torch.logsumexp(sim[1:, 1], 0))
    expected = (row0 + row1) / 2 + (col0 + col1) / 2
    torch.testing.assert_close(sampled_nce_loss(video, query, mask, saliency, pos, scale), expected)
    torch.testing.assert_close(sampled_nce_loss(video, query, mask, saliency, pos, scale, col=False), (row0 + row1) / 2)


def test_info_nce_is_symmetric_cross_entropy() -> None:
    a, b = torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(1, 2) * 10.0
    target = torch.arange(5)
    expected = sum(
        (F.cross_entropy(logits[k], target) + F.cross_entropy(logits[k].t(), target)) / 2 for k in range(3)
    ) / 3
    torch.testing.assert_close(info_nce_loss(a, b, 10.0), expected)


def test_sampled_nce_gradient_is_finite_when_a_clip_is_excluded_in_every_sample() -> None:
    # Clip 2 is padding in both samples: the official all-columns softmax gives NaN gradients here (issue: non-finite
    # training steps); the value must stay the one of the official formula.
    video = torch.randn(2, 3, 4, requires_grad=True)
    query = torch.randn(2, 1, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    saliency = torch.tensor([[0.5, 0.9, 0.0], [0.3, 0.3, 0.0]])
    pos = torch.tensor([1, 0])
    scale = 1 / 0.07
    loss = sampled_nce_loss(video, query, mask, saliency, pos, scale)
    loss.backward()
    assert torch.isfinite(video.grad).all() and torch.isfinite(query.grad).all()

    sim = F.cosine_similarity(video, query, dim=-1).detach() * scale
    allowed = (saliency <= saliency[torch.arange(2), pos].unsqueeze(-1)) & (mask > 0)
    sim = sim.masked_fill(~allowed, float("-inf"))
    rows = torch.arange(2)
    official = -F.log_softmax(sim, 1)[rows, pos].mean() - F.log_softmax(sim.t(), 1)[pos, rows].mean()
    torch.testing.assert_close(loss.detach(), official)
