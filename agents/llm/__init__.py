"""Optional language-model assistance: a proposer, never a judge.

Off unless ``GENESIS_LLM_BASE_URL`` and ``GENESIS_LLM_MODEL`` are set (an OpenAI-compatible chat endpoint: a hosted
provider, or vLLM, Ollama, llama.cpp). Every call is asked for JSON that a schema checks; whatever it proposes goes
through the same validation as a person's answer before anyone sees it. Any fault (timeout, rate limit, server
error, malformed or off-schema JSON, budget spent) is recorded and the caller carries on without it: the rules
and statistics behave exactly as when no model is configured.

1. ``settings()``: the configuration (the key is kept out of every ``repr``, log line and record).
2. ``Assistant(mission_id=...).ask(purpose, messages, schema)``: one call within the mission's budget (reserved
   before the call and settled after it, ``budget``, so two workers cannot both spend its last call); returns an
   ``Exchange`` whose ``data`` is the validated JSON, or None with ``outcome`` saying why.
3. Each exchange is recorded: a history entry ``llm.call`` (model, tokens, latency, outcome; what the budget and the
   cockpit's total read) and, through the caller's artifact writer, the prompt and response as a JSON artifact.
"""

from agents.llm.assistant import Assistant, Exchange, mission_usage
from agents.llm.config import LLMSettings, settings

__all__ = ["Assistant", "Exchange", "LLMSettings", "mission_usage", "settings"]
