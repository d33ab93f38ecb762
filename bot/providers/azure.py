"""Azure OpenAI: OpenAI's fine-tuning API behind `AsyncAzureOpenAI` (endpoint, api-version, key or
Entra ID token), plus the step Azure adds: a tuned model answers only through a deployment.

Deployments are made through Azure's management plane (ARM), which the data-plane key cannot
reach; so when a job succeeds tuneup names the deployment it will call and tells the user the
one command that creates it. `/ask-model` for that model then calls the deployment.
"""

from __future__ import annotations

import re
from typing import Any

import openai

from bot.providers.base import Rejected, RemoteJob
from bot.providers.openai_compat import OpenAICompatible

DEPLOYMENT_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def deployment_name(model: str) -> str:
    """The deployment tuneup calls for a tuned model: its name in Azure's allowed characters."""
    return DEPLOYMENT_CHARS.sub("-", model)[-64:].strip("-.") or "tuneup-model"


class AzureOpenAI(OpenAICompatible):
    kind = "azure"

    def __init__(self, client: openai.AsyncAzureOpenAI, label: str, resource: str = "") -> None:
        super().__init__(client, label)
        self.resource = resource

    async def chat(
        self, model: str, messages: list[dict[str, Any]], *, max_tokens: int, timeout: float
    ) -> str:
        try:
            return await super().chat(
                deployment_name(model), messages, max_tokens=max_tokens, timeout=timeout
            )
        except openai.NotFoundError as exc:
            raise Rejected(
                f"{self.label} has no deployment `{deployment_name(model)}` for `{model}` yet. "
                f"{self.deploy_hint(model)}"
            ) from exc

    async def complete(
        self, model: str, prompt: str, *, max_tokens: int, stop: str | None, timeout: float
    ) -> str:
        return await super().complete(
            deployment_name(model), prompt, max_tokens=max_tokens, stop=stop, timeout=timeout
        )

    def deploy_hint(self, model: str) -> str:
        resource = self.resource or "<your-resource>"
        return (
            "Create it with: `az cognitiveservices account deployment create "
            f"--resource-group <group> --name {resource} --deployment-name {deployment_name(model)} "
            f"--model-name {model} --model-format OpenAI --model-version 1 "
            "--sku-name Standard --sku-capacity 1`."
        )

    async def after_success(self, remote: RemoteJob) -> str | None:
        if not remote.fine_tuned_model:
            return None
        return (
            f"Azure serves `{remote.fine_tuned_model}` only through a deployment; `/ask-model` "
            f"will call `{deployment_name(remote.fine_tuned_model)}`. "
            f"{self.deploy_hint(remote.fine_tuned_model)}"
        )
