"""Fine-tuning providers behind one interface (`base.ProviderAPI`): OpenAI-compatible APIs
(OpenAI, the local engine, Amazon Bedrock, any base URL), Azure OpenAI, Together AI, Fireworks AI."""

from bot.providers.base import (
    PROVIDER_OPTIONS,
    Checkpoint,
    CreateRequest,
    NotFound,
    NotOffered,
    ProviderAPI,
    Rejected,
    RemoteError,
    RemoteEvent,
    RemoteJob,
    TunableModel,
)
from bot.providers.errors import (
    OPENAI_WIND_DOWN,
    ProviderNotConfigured,
    explain_error,
    is_ambiguous,
)
from bot.providers.registry import (
    LOCAL,
    OPENAI_PREFIXES,
    Provider,
    Providers,
    build_api,
    route,
    validation_prices,
)

__all__ = [
    "LOCAL",
    "PROVIDER_OPTIONS",
    "OPENAI_PREFIXES",
    "OPENAI_WIND_DOWN",
    "Checkpoint",
    "CreateRequest",
    "NotFound",
    "NotOffered",
    "Provider",
    "ProviderAPI",
    "ProviderNotConfigured",
    "Providers",
    "Rejected",
    "RemoteError",
    "RemoteEvent",
    "RemoteJob",
    "TunableModel",
    "build_api",
    "explain_error",
    "is_ambiguous",
    "route",
    "validation_prices",
]
