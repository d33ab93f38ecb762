"""Engine configuration, read from TUNEUP_ENGINE_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"


DEFAULT_ROOT = Path.home() / ".local" / "share" / "tuneup"


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEUP_ENGINE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8700
    api_key: SecretStr | None = None
    # Default: `engine/` under the bot's TUNEUP_DATA_DIR (environment or .env), so both agree.
    data_dir: Path | None = None
    tuneup_data_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("TUNEUP_DATA_DIR", "tuneup_data_dir")
    )
    # Where dequantized base models are cached; shared between data dirs when set.
    model_cache_dir: Path | None = None
    # Extra base models: {"name": "/path/to/a/local/hf/model/dir"}.
    base_models: dict[str, str] = Field(default_factory=dict)
    default_base_model: str = DEFAULT_BASE_MODEL
    max_loaded_models: int = 2
    max_seq_len: int = 1024
    max_upload_bytes: int = 512 * 1024 * 1024
    # Bodies of every other route (JSON requests) are capped here, before they are read.
    max_request_bytes: int = 8 * 1024 * 1024
    # Inference limits: longer prompts are refused; one generation stops after this long.
    max_prompt_tokens: int = 4096
    max_generation_seconds: float = 60.0
    base_learning_rate: float = 5e-4
    lora_rank: int = 16
    lora_alpha: int = 32
    keep_checkpoints: int = 3
    device: str = "auto"
    torch_threads: int = 0
    # GPU training choices; "auto" decides from the device and the memory estimate.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    attention: Literal["auto", "sdpa", "flash_attention_2", "eager"] = "auto"
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
    packing: Literal["auto", "on", "off"] = "auto"  # auto: on for GPUs
    liger: Literal["auto", "off"] = "auto"  # used when liger-kernel is installed (CUDA)
    qlora: bool = (
        False  # 4-bit NF4 base weights (bitsandbytes; GPU or CPU); per job: hyperparameter
    )
    memory_limit_gb: float | None = None  # default: free GPU memory, or available RAM
    # How models answer on a CPU. auto: int8 weight-only (a quarter of fp32's bytes per token:
    # 3x faster; answers can differ from fp32 where two tokens nearly tie, as bf16's do);
    # fp32: answers exactly as an fp32 load of the exported model does. GPUs answer in bf16.
    inference_precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    # A vLLM/SGLang server that gets each tuned adapter loaded and answers chat for it.
    serve_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TUNEUP_ENGINE_SERVE_URL", "TUNEUP_SERVE_URL", "serve_url"),
    )
    serve_api_key: SecretStr | None = None
    # `org/model` base models come from the Hugging Face Hub (HF_HUB_OFFLINE is respected).
    hub_models: bool = True
    hub_endpoint: str | None = None  # default: huggingface.co (or HF_ENDPOINT)
    # With several processes: DDP (each rank holds the model) or FSDP (decoder layers sharded);
    # auto: DDP when the model fits one device, else FSDP.
    distributed: Literal["auto", "ddp", "fsdp"] = "auto"
    # Processes per job (DDP through torchrun); 0: one per CUDA GPU, one on a CPU.
    nproc: int = 0

    @model_validator(mode="after")
    def _paths(self) -> EngineSettings:
        root = (self.tuneup_data_dir or DEFAULT_ROOT).expanduser()
        self.data_dir = (self.data_dir or root / "engine").expanduser()
        if self.model_cache_dir is not None:
            self.model_cache_dir = self.model_cache_dir.expanduser()
        return self

    @property
    def db_path(self) -> Path:
        return self.data_dir / "engine.sqlite3"

    @property
    def cache_dir(self) -> Path:
        return self.model_cache_dir or (self.data_dir / "base-models")

    def ensure_dirs(self) -> None:
        for sub in ("files", "models", "checkpoints", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
