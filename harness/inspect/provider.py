"""The reference agents as an Inspect model provider: `--model kpimcp/compliant` and `--model kpimcp/violating`.

Each turn answers with the next tool call of the scenario's compliant reference run (or its most severe
violating one), then with the reference's closing message (a `submit` call when the agent offers one), so the
whole integration (tools over MCP, audit, scorer, statuses) is testable offline: no network, no keys, and no
tokenizer download (token counts are estimated from characters).
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import ChatMessage, GenerateConfig, ModelAPI, ModelOutput, modelapi
from inspect_ai.tool import ToolChoice, ToolInfo
from inspect_ai.util import store

from kpimcp.harness.reference import pick_reference
from kpimcp.scenarios import load as load_scenario

from .solvers import KEYS

__all__ = ["ReferenceAgentAPI"]

KINDS = ("compliant", "violating")


@modelapi(name="kpimcp")
class ReferenceAgentAPI(ModelAPI):
    """Replays the current sample's reference run; the model name picks which (compliant or violating)."""

    def __init__(self, model_name: str, base_url: str | None = None, api_key: str | None = None,
                 config: GenerateConfig | None = None, **model_args: Any) -> None:  # fmt: skip
        if model_name not in KINDS:
            raise ValueError(f"unknown reference agent kpimcp/{model_name}; use kpimcp/compliant or kpimcp/violating")
        super().__init__(model_name, base_url, api_key, [], config or GenerateConfig())

    async def generate(self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice,
                       config: GenerateConfig) -> ModelOutput:  # fmt: skip
        sid = store().get(KEYS.scenario)
        if not sid:
            raise RuntimeError("the kpimcp reference agents only run kpimcp tasks (no scenario in the sample store)")
        reference = pick_reference(load_scenario(sid), self.model_name)
        if reference is None:
            raise RuntimeError(f"scenario {sid} has no {self.model_name} reference run")
        turn = sum(1 for m in input if m.role == "assistant")
        name = f"kpimcp/{self.model_name}"
        if turn < len(reference.steps):
            step = reference.steps[turn]
            return ModelOutput.for_tool_call(name, step.tool, dict(step.arguments), tool_call_id=f"ref-{turn + 1}")
        final = reference.final_message or "Done."
        if any(t.name == "submit" for t in tools):  # react / basic_agent with their own submit tool
            return ModelOutput.for_tool_call(name, "submit", {"answer": final}, tool_call_id=f"ref-{turn + 1}")
        return ModelOutput.from_content(name, final)

    async def count_text_tokens(self, text: str) -> int:
        return len(text) // 4 + 1  # no tokenizer: the reference agents must work offline

    def max_tokens(self) -> int | None:
        return None
