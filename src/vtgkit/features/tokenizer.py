"""CLIP's byte-level BPE tokenizer (OpenAI ``SimpleTokenizer`` behaviour) and ``tokenize(..., truncate=True)``.

The BPE merges are OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` (MIT), shipped in ``vtgkit/features/assets`` with its
sha256 checked on load; it is the same file the ``clip`` and ``open_clip_torch`` packages ship. Text cleaning is
CLIP's: ``ftfy.fix_text``, HTML unescaped twice, whitespace collapsed, lower-cased.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from functools import lru_cache
from pathlib import Path

import torch

from vtgkit.errors import ConfigError

VOCAB_PATH = Path(__file__).with_name("assets") / "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
_NUM_MERGES = 49152 - 256 - 2


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """Reversible map from every byte to a printable unicode character (GPT-2 / CLIP byte-level BPE)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in codes), strict=True))


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(zip(word[:-1], word[1:], strict=False))


class CLIPTokenizer:
    """Text -> CLIP token ids (49406 = start of text, 49407 = end of text, 0 = padding)."""

    def __init__(self, vocab_path: str | Path = VOCAB_PATH) -> None:
        try:
            import ftfy
            import regex
        except ImportError as error:
            raise ConfigError("the CLIP tokenizer needs ftfy and regex: pip install 'vtgkit[features]'") from error
        self._ftfy = ftfy
        vocab_path = Path(vocab_path)
        raw = vocab_path.read_bytes()
        if vocab_path == VOCAB_PATH and hashlib.sha256(raw).hexdigest() != VOCAB_SHA256:
            raise ConfigError(f"{vocab_path}: sha256 differs from CLIP's BPE vocabulary ({VOCAB_SHA256})")
        lines = gzip.decompress(raw).decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
        byte_chars = list(_bytes_to_unicode().values())
        vocab = byte_chars + [char + "</w>" for char in byte_chars]
        vocab += ["".join(merge) for merge in merges]
        vocab += [START_OF_TEXT, END_OF_TEXT]
        self.encoder = {token: index for index, token in enumerate(vocab)}
        self.decoder = {index: token for token, index in self.encoder.items()}
        self.bpe_ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.byte_encoder = _bytes_to_unicode()
        self.sot_token = self.encoder[START_OF_TEXT]
        self.eot_token = self.encoder[END_OF_TEXT]
        self._cache = {START_OF_TEXT: START_OF_TEXT, END_OF_TEXT: END_OF_TEXT}
        self._pattern = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )
        self._whitespace = regex.compile(r"\s+")

    def _bpe(self, token: str) -> str:
        if token in self._cache:
            return self._cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            merged: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    merged.extend(word[i:])
                    break
                merged.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        result = " ".join(word)
        self._cache[token] = result
        return result

    def clean(self, text: str) -> str:
        """CLIP's text cleaning: ftfy, HTML unescaped twice, whitespace collapsed, lower-cased."""
        text = html.unescape(html.unescape(self._ftfy.fix_text(text))).strip()
        return self._whitespace.sub(" ", text).strip().lower()

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` without start/end tokens."""
        ids: list[int] = []
        for token in self._pattern.findall(self.clean(text)):
            token = "".join(self.byte_encoder[byte] for byte in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self._bpe(token).split(" "))
        return ids

    def tokenize(self, texts: str | list[str], context_length: int = 77, truncate: bool = True) -> torch.Tensor:
        """``clip.tokenize``: (N, context_length) int64 ids, SOT ... EOT then zeros.

        With ``truncate`` a too-long text is cut to ``context_length`` ids and the last one is forced to EOT;
        without it a too-long text raises ``ConfigError``.
        """
        if isinstance(texts, str):
            texts = [texts]
        result = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot_token, *self.encode(text), self.eot_token]
            if len(ids) > context_length:
                if not truncate:
                    raise ConfigError(f"query {text!r} has {len(ids)} tokens, more than the context {context_length}")
                ids = ids[:context_length]
                ids[-1] = self.eot_token
            result[row, : len(ids)] = torch.tensor(ids)
        return result


@lru_cache(maxsize=1)
def default_tokenizer() -> CLIPTokenizer:
    """The shared tokenizer over the shipped vocabulary (building the merge table takes ~0.3 s)."""
    return CLIPTokenizer()
