"""tiktoken with an offline cache, and the right encoding for each target model."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import tiktoken

BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def _cache_dir(data_dir: Path | None) -> Path:
    env = os.environ.get("TIKTOKEN_CACHE_DIR")  # tiktoken's own variable, read by tiktoken too
    if env:
        return Path(env)
    return (data_dir or Path.home() / ".local" / "share" / "tuneup") / "tiktoken"


def prime_offline_cache(data_dir: Path | None = None) -> Path:
    """Fill tiktoken's cache from the files bundled in `bpe-openai`, so no download is needed."""
    directory = _cache_dir(data_dir)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        return directory
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("o200k_base", "cl100k_base"):
        target = directory / hashlib.sha1(BLOB_URL.format(name).encode()).hexdigest()
        source = data / f"{name}.tiktoken.gz"
        if not target.exists() and source.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(gzip.decompress(source.read_bytes()))
            tmp.rename(target)
    return directory


# The local engine truncates examples at its max_seq_len (TUNEUP_ENGINE_MAX_SEQ_LEN, 1024 by
# default); callers pass the configured value from the settings.
LOCAL_MAX_TOKENS = 1024


def encoding_name(model: str) -> str:
    name = model.removeprefix("ft:").split("/")[-1]
    if (
        name.startswith(("gpt-3.5", "davinci", "babbage", "gpt-4-", "text-embedding"))
        or name == "gpt-4"
    ):
        return "cl100k_base"
    return "o200k_base"


OPENAI_FAMILIES = ("gpt-", "davinci", "babbage", "o1", "o3", "o4", "text-embedding")


def is_openai_model(model: str) -> bool:
    return model.removeprefix("ft:").split("/")[-1].startswith(OPENAI_FAMILIES)


class LocalTokenizer:
    """A local model's own tokenizer (tokenizer.json), with tiktoken's counting interface."""

    def __init__(self, path: Path, model: str) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self.name = f"{model} tokenizer"

    def encode_ordinary(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids


def base_of(model: str) -> str:
    """`ft:smollm2-135m-instruct:local:x:1234` → `smollm2-135m-instruct`."""
    return model.removeprefix("ft:").split(":")[0].split("/")[-1]


def encoding_for(model: str, tokenizer_dirs: Sequence[Path] = ()) -> Any:
    """tiktoken for OpenAI models; a local model's own tokenizer when one is found."""
    if not is_openai_model(model):
        for directory in tokenizer_dirs:
            path = Path(directory) / base_of(model) / "tokenizer.json"
            if path.exists():
                try:
                    return _local(path, model)
                except (ImportError, OSError, ValueError):
                    break
    return _tiktoken(encoding_name(model))


@cache
def _local(path: Path, model: str) -> LocalTokenizer:
    return LocalTokenizer(path, base_of(model))


@cache
def _tiktoken(name: str) -> tiktoken.Encoding:
    prime_offline_cache()
    return tiktoken.get_encoding(name)


# Token limits per training example, by model family.
def token_limit(model: str, local_max: int = LOCAL_MAX_TOKENS) -> int:
    name = model.removeprefix("ft:").split("/")[-1]
    if name.startswith(("davinci", "babbage")):
        return 2048
    if name.startswith("gpt-3.5"):
        return 16385
    if is_openai_model(model):
        return 65536  # gpt-4o, gpt-4.1 and newer
    return local_max
