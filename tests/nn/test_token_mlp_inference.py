"""The inference token MLP (vtgkit.nn.token_mlp_inference) against the module sequence in eval mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vtgkit.nn.token_mlp_inference import token_mlp_hidden, token_mlp_output


def make_mlp(width: int, dims: int) -> nn.Sequential:
    mlp = nn.Sequential(nn.LayerNorm(width), nn.Dropout(0.5), nn.Linear(width, dims), nn.ReLU(inplace=True),
                        nn.LayerNorm(dims), nn.Dropout(0.5), nn.Linear(dims, dims)).eval()
    for module in mlp:
        if isinstance(module, nn.LayerNorm):
            nn.init.normal_(module.weight, 1.0, 0.1)
            nn.init.normal_(module.bias, 0.0, 0.1)
    return mlp


@pytest.mark.parametrize("rows_per_chunk", [None, 1, 7, 1000])
@pytest.mark.parametrize("with_tef", [True, False])
def test_hidden_then_output_equals_the_module_sequence(rows_per_chunk: int | None, with_tef: bool) -> None:
    tokens = (torch.randn(9, 5, 12) * 3).half()[:, :, :]  # 9 clips, 5 tokens, width 12
    tef = torch.rand(9, 2) if with_tef else None
    mlp = make_mlp(12 + (2 if with_tef else 0), 16)
    x = tokens.float() if tef is None else torch.cat((tokens.float(), tef[:, None].expand(-1, 5, -1)), dim=-1)
    with torch.inference_mode():
        expected_hidden = mlp[:5](x)
        hidden = token_mlp_hidden(tokens, tef, mlp, rows_per_chunk)
        torch.testing.assert_close(hidden, expected_hidden, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(token_mlp_output(hidden, mlp), mlp(x), atol=1e-5, rtol=1e-5)
        out = torch.full((9, 5, 16), float("nan"))
        assert token_mlp_hidden(tokens, tef, mlp, rows_per_chunk, out=out) is out
        torch.testing.assert_close(out, expected_hidden, atol=1e-5, rtol=1e-5)


def test_strided_tokens_and_empty_input() -> None:
    mlp = make_mlp(12, 16)
    stored = torch.randn(6, 3, 5, 12).half()  # (T, K, P, Dv): one layer is a strided view
    with torch.inference_mode():
        torch.testing.assert_close(token_mlp_hidden(stored[:, 1], None, mlp, 10), mlp[:5](stored[:, 1].float()),
                                   atol=1e-5, rtol=1e-5)
        assert token_mlp_hidden(stored[:0, 1], None, mlp).shape == (0, 5, 16)
    with pytest.raises(ValueError, match="width"):
        token_mlp_hidden(stored[:, 1], torch.zeros(6, 2), mlp)
