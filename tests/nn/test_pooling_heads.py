import torch

from vtgkit.nn.heads import ConvHead
from vtgkit.nn.pooling import AdaPooling


def test_ada_pooling_ignores_padded_tokens() -> None:
    pooling = AdaPooling(3)
    x = torch.randn(1, 4, 3)
    alone = pooling(x[:, :2])
    padded = pooling(torch.cat((x[:, :2], torch.full((1, 2, 3), 7.0)), dim=1), torch.tensor([[1, 1, 0, 0]]))
    torch.testing.assert_close(alone, padded)
    weights = (pooling.att(x[0, :2]).squeeze(-1)).softmax(0)
    torch.testing.assert_close(alone[0, 0], weights @ x[0, :2])
    assert list(pooling.state_dict()) == ["att.weight"]


def test_conv_head_keys_and_mask() -> None:
    head = ConvHead(4, 2)
    assert list(head.state_dict()) == ["module.1.weight", "module.1.bias", "module.3.weight", "module.3.bias"]
    x = torch.randn(1, 3, 4)
    alone = head(x)
    assert alone.shape == (1, 3, 2)
    padded = torch.cat((x, torch.randn(1, 2, 4)), dim=1)
    masked = head(padded, torch.tensor([[1, 1, 1, 0, 0]]))
    torch.testing.assert_close(masked[:, :3], alone)
    assert not torch.allclose(head(padded)[:, :3], alone)
