"""A small character-level transformer language model on Python's own documentation text.

The corpus is ``pydoc_data.topics`` (shipped with CPython, ~465k characters). The last 10% of the text is
the held-out slice, never trained on; training uses the first ``data_fraction`` of the other 90%.
The budget counts epochs of ``steps_per_epoch`` optimizer steps; the reporter is called after each.
Held-out metric: bits per character on the held-out slice (minimize).

Layers with ≥ 50 eigenvalues (d_model = 64): ``blocks.*.attn.qkv``, ``blocks.*.attn.proj``,
``blocks.*.mlp.fc1``, ``blocks.*.mlp.fc2``, ``head`` and the embeddings. The target α band for
transformers is [3, 4] (see conf/score).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wwtune.objective import UNSEEN_LOSS, Params, Reporter, Split, task

from ._common import constant_predictor_loss, make_optimizer, resolve_hparams, split_indices, subset_size
from ._training import TRAINING_DEFAULTS, InTraining

DEFAULTS: dict[str, Any] = {
    "lr": 3e-3,
    "opt": "adamw",
    "momentum": 0.9,  # used only with opt=sgd
    "weight_decay": 0.01,
    "dropout": 0.0,
    "batch_size": 32,
    "context": 64,
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 2,
    "steps_per_epoch": 50,
    "eval_chars": 16384,
    "decay_bias_and_norm": True,  # see Params.param_groups
    "decay_follows_lr_mult": True,
    **TRAINING_DEFAULTS,  # schedule, balance, freeze (objectives/_training.py): all off by default
}

HELDOUT_FRACTION = 0.1


@lru_cache(maxsize=1)
def corpus() -> tuple[str, torch.Tensor]:
    """``(alphabet, codes)``: the sorted characters of the corpus and the whole text as int64 codes."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[key] for key in sorted(topics))
    alphabet = "".join(sorted(set(text)))
    index = {ch: i for i, ch in enumerate(alphabet)}
    return alphabet, torch.tensor([index[ch] for ch in text], dtype=torch.int64)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))


class FeedForward(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)
        self.drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(F.gelu(self.fc1(x))))


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = FeedForward(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """Pre-norm GPT-style decoder: ``tok_emb + pos_emb → drop_emb → blocks.{i} → ln_f → head``."""

    def __init__(self, vocab: int, context: int, d_model: int, n_heads: int, n_layers: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model must be divisible by n_heads but got {d_model} and {n_heads}.")
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Embedding(context, d_model)
        self.drop_emb = nn.Dropout(0.0)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1])
        x = self.drop_emb(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def _loss(model: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


@torch.no_grad()
def heldout_bits_per_char(model: nn.Module, codes: torch.Tensor, context: int, max_chars: int) -> float:
    """Mean next-character loss in bits over non-overlapping windows of ``codes`` (model in eval mode)."""
    model.eval()
    windows = _windows(codes, context, max_chars)
    if len(windows) < 1:
        raise ValueError(f"held-out slice of {len(codes)} characters is shorter than one window ({context}).")
    total = sum(float(_loss(model, chunk)) * len(chunk) for chunk in windows.split(64))
    return total / len(windows) / math.log(2)


def _windows(codes: torch.Tensor, context: int, max_chars: int) -> torch.Tensor:
    n_windows = min(len(codes) - 1, max_chars) // context
    return codes[: n_windows * context + 1].unfold(0, context + 1, context)[:n_windows]


def split_text(codes: torch.Tensor, context: int, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, unseen)`` characters of a re-split: the text cut into blocks of 8 windows, the blocks
    split by :func:`split_indices` and each part concatenated in text order."""
    size = 8 * context
    blocks = codes[: len(codes) // size * size].view(-1, size)
    train, unseen = split_indices(len(blocks), split)
    return blocks[sorted(train)].reshape(-1), blocks[sorted(unseen)].reshape(-1)


@task(supports_data_fraction=True, supports_resplit=True)
def train(params: Params, reporter: Reporter) -> dict[str, Any]:
    """Train ``params.budget`` epochs of ``steps_per_epoch`` steps; returns held-out bits per char, the
    training-set size, the training loss before training (``loss_init``, nats per char on the first
    ``eval_chars`` training characters) and the unigram entropy of the training text (``loss_trivial``,
    the best context-free predictor's loss, nats)."""
    hp = resolve_hparams(params, DEFAULTS, "char_lm")
    context, batch = int(hp["context"]), int(hp["batch_size"])
    alphabet, codes = corpus()
    n_heldout = round(HELDOUT_FRACTION * len(codes))
    train_codes = codes[: len(codes) - n_heldout]
    train_codes = train_codes[: subset_size(len(train_codes), params.data_fraction)]
    unseen_codes = None
    if params.split is not None:
        train_codes, unseen_codes = split_text(train_codes, context, params.split)
    if len(train_codes) < context + 2:
        raise ValueError(
            f"data_fraction={params.data_fraction} leaves {len(train_codes)} training characters, "
            f"fewer than one context window ({context + 1})."
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params.seed))
        model = CharTransformer(
            len(alphabet), context, int(hp["d_model"]), int(hp["n_heads"]), int(hp["n_layers"])
        )
        params.apply_dropout(model)
        with torch.no_grad():
            model.eval()
            first = _windows(train_codes, context, int(hp["eval_chars"]))
            loss_init = sum(float(_loss(model, w)) * len(w) for w in first.split(64)) / len(first)
        optimizer = make_optimizer(params, model, hp)
        helpers = InTraining(model, optimizer, hp, int(params.budget))
        offsets_rng = torch.Generator().manual_seed(int(params.seed) + 1)
        span = torch.arange(context + 1)
        reporter.report(0, model, loss_init)  # before training: the reference of the study's sanity rules
        for epoch in range(1, int(params.budget) + 1):
            model.train()
            total = 0.0
            for _ in range(int(hp["steps_per_epoch"])):
                starts = torch.randint(len(train_codes) - context, (batch,), generator=offsets_rng)
                loss = _loss(model, train_codes[starts[:, None] + span])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
            helpers.epoch_end()
            reporter.report(epoch, model, total / int(hp["steps_per_epoch"]))
        bpc = heldout_bits_per_char(model, codes[len(codes) - n_heldout :], context, int(hp["eval_chars"]))
        out = {
            "heldout": bpc,
            "n_train": len(train_codes),
            "loss_init": loss_init,
            "loss_trivial": constant_predictor_loss(train_codes, len(alphabet)),
        }
        if training := helpers.record():
            out["training"] = training
        if unseen_codes is not None:
            out[UNSEEN_LOSS] = heldout_bits_per_char(model, unseen_codes, context, int(hp["eval_chars"]))
    return out
