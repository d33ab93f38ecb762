"""tiktoken with an offline cache, and the right encoding for each target model."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
from functools import cache
from pathlib import Path

import tiktoken

BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def _cache_dir() -> Path:
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    if env:
        return Path(env)
    root = os.environ.get("TUNEUP_DATA_DIR")
    base = Path(root) if root else Path.home() / ".local" / "share" / "tuneup"
    return base / "tiktoken"


def prime_offline_cache() -> Path:
    """Fill tiktoken's cache from the files bundled in `bpe-openai`, so no download is needed."""
    directory = _cache_dir()
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


def encoding_name(model: str) -> str:
    name = model.removeprefix("ft:").split("/")[-1]
    if (
        name.startswith(("gpt-3.5", "davinci", "babbage", "gpt-4-", "text-embedding"))
        or name == "gpt-4"
    ):
        return "cl100k_base"
    return "o200k_base"


@cache
def encoding_for(model: str) -> tiktoken.Encoding:
    prime_offline_cache()
    return tiktoken.get_encoding(encoding_name(model))


# Token limits per training example, by model family.
def token_limit(model: str) -> int:
    name = model.removeprefix("ft:").split("/")[-1]
    if name.startswith(("davinci", "babbage")):
        return 2048
    if name.startswith("gpt-3.5"):
        return 16385
    if name.startswith(("gpt-4o", "gpt-4.1")):
        return 65536
    return 4096  # the local engine's default model works in 1k-8k windows
