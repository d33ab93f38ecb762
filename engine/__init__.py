"""tuneup's local fine-tuning engine: an OpenAI-compatible server that trains LoRA adapters.

It stands alone: nothing here imports bot/, adapters/ or storage/.
"""

import logging

# On CPUs with AVX512-BF16, bitsandbytes warns at import (peft imports it) that the optional
# `kernels` package, which fetches a faster 4-bit kernel from the Hugging Face Hub, is missing.
# The engine never downloads code; bitsandbytes' built-in CPU path is used instead.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
