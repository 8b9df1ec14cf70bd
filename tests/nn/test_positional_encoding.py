import math

import torch

from vtgkit.nn.positional_encoding import PositionalEncoding, sinusoidal_encoding


def test_sinusoidal_encoding_hand_computed() -> None:
    encoding = sinusoidal_encoding(2, 4)
    # positions 1, 2 normalised to p / (2 + 1e-6) · 2π; divisors 10000^(0/4), 10000^(0/4), 10000^(2/4), 10000^(2/4)
    for row, position in enumerate((1, 2)):
        angle = position / (2 + 1e-6) * 2 * math.pi
        expected = [math.sin(angle), math.cos(angle), math.sin(angle / 100), math.cos(angle / 100)]
        torch.testing.assert_close(encoding[row], torch.tensor(expected), atol=1e-6, rtol=0)


def test_positional_encoding_padded_vs_per_length() -> None:
    module = PositionalEncoding(8)
    padded = module(torch.zeros(2, 5, 8))
    assert padded.shape == (2, 5, 8)
    assert torch.equal(padded[0], padded[1])
    per_length = module.for_lengths([5, 3], 5, torch.device("cpu"))
    assert torch.equal(per_length[0], padded[0])
    assert torch.equal(per_length[1, :3], sinusoidal_encoding(3, 8))
    assert torch.all(per_length[1, 3:] == 0)
    assert not torch.allclose(per_length[1, :3], padded[1, :3])  # the padded length changes the encoding (§15.5)
