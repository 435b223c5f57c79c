"""Drives a running grpst server with LlamaIndex's OpenAI-compatible LLM (llama-index-llms-openai-like).

    python client/python/compat_llamaindex.py 127.0.0.1:9997 [--api_key KEY] [--model NAME]

LlamaIndex builds its own requests and parses the answers itself (tool calls, streamed deltas,
structured output through a forced tool call), so it catches shapes that the openai client
forgives. Everything runs offline: nothing here needs a tokenizer download. Exits 0 when every
check passed, 1 at the first failure; stdout is one line of JSON (see compat_common.py).
"""

import asyncio
import importlib.metadata
from typing import Any, Dict, List, Literal

from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai.utils import to_openai_message_dicts
from llama_index.llms.openai_like import OpenAILike
from pydantic import BaseModel, Field

from compat_common import Runner, expect, expect_equal, parse_args, rendered_prompt, served_model

args = parse_args(__doc__.splitlines()[0])
runner = Runner("llama-index-llms-openai-like", importlib.metadata.version("llama-index-llms-openai-like"), args.root)
state: Dict[str, Any] = {}

QUESTION = [ChatMessage(role="user", content="Tell me a short story about a robot.")]


def make_llm(**overrides: Any) -> OpenAILike:
    """The LLM as a LlamaIndex user configures it for a vLLM-style server; greedy unless overridden."""
    settings: Dict[str, Any] = dict(
        model=state["model"], api_base=args.base_url, api_key=args.api_key, is_chat_model=True, is_function_calling_model=True,
        context_window=state["max_model_len"], max_tokens=16, temperature=0, additional_kwargs={"seed": 7}, max_retries=0, timeout=120,
    )
    settings.update(overrides)
    return OpenAILike(**settings)


# Annotations stay real objects (no `from __future__ import annotations`): LlamaIndex reads this
# signature at run time to build the tool's JSON schema.
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "fahrenheit") -> str:
    """Get the current weather in a city."""
    return f"59 degrees {unit} in {city}"


class Person(BaseModel):
    """A person."""

    name: str = Field(max_length=20)
    age: int = Field(ge=0, le=120)
    hobbies: List[str] = Field(max_length=2)


def check_setup() -> Dict[str, Any]:
    return served_model(args.base_url, args.api_key, args.model, state)


def check_chat() -> Dict[str, Any]:
    r = make_llm().chat(QUESTION)
    expect_equal(r.message.role.value, "assistant", "message.role")
    expect(isinstance(r.message.content, str) and len(r.message.content) > 0, f"empty content: {r.message}")
    usage = r.raw.usage
    expect(0 < usage.completion_tokens <= 16, f"completion_tokens {usage.completion_tokens}")
    state["chat"] = r.message.content
    return {"completion_tokens": usage.completion_tokens}


def check_stream_chat() -> Dict[str, Any]:
    parts = list(make_llm().stream_chat(QUESTION))
    expect(len(parts) >= 2, f"only {len(parts)} streamed responses")
    joined = "".join(p.delta or "" for p in parts)
    expect_equal(joined, state["chat"], "the streamed deltas joined (greedy)")
    expect_equal(parts[-1].message.content, state["chat"], "the accumulated message")
    return {"responses": len(parts)}


def check_complete() -> Dict[str, Any]:
    # is_chat_model=False: LlamaIndex sends the prompt as is to /v1/completions.
    llm = make_llm(is_chat_model=False)
    text = llm.complete("The capital of France is").text
    expect(isinstance(text, str) and len(text) > 0, "empty completion")
    streamed = "".join(p.delta or "" for p in llm.stream_complete("The capital of France is"))
    expect_equal(streamed, text, "the streamed completion (greedy)")
    return {"chars": len(text)}


async def concurrent_chats(count: int) -> List[str]:
    llm = make_llm(temperature=0.7)

    async def one(i: int) -> str:
        last = None
        async for part in await llm.astream_chat([ChatMessage(role="user", content=f"Count to {i + 3}.")]):
            last = part
        return last.message.content if last else ""

    return await asyncio.gather(*(one(i) for i in range(count)))


def check_async_streams() -> Dict[str, Any]:
    texts = asyncio.run(concurrent_chats(4))
    expect(all(len(t) > 0 for t in texts), f"an empty streamed answer among {texts}")
    return {"streams": len(texts)}


def check_tool_call_and_result() -> Dict[str, Any]:
    tool = FunctionTool.from_defaults(fn=get_weather)
    llm = make_llm(max_tokens=96)
    question = "What's the weather like in Boston today?"
    # tool_required=True is tool_choice "required": the server's constrained decoding makes it a call.
    response = llm.chat_with_tools([tool], user_msg=question, tool_required=True)
    calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    expect(len(calls) >= 1, "no tool call")
    outputs = []
    for call in calls:
        expect_equal(call.tool_name, "get_weather", "tool_name")
        expect(isinstance(call.tool_kwargs.get("city"), str), f"tool_kwargs {call.tool_kwargs}")
        output = tool.call(**call.tool_kwargs)
        expect(not output.is_error, f"the tool refused its arguments {call.tool_kwargs}: {output.content}")
        outputs.append(output.content)
    messages = [ChatMessage(role="user", content=question), response.message]
    messages += [ChatMessage(role="tool", content=out, additional_kwargs={"tool_call_id": c.tool_id, "name": c.tool_name})
                 for c, out in zip(calls, outputs)]
    follow = llm.chat(messages)
    expect(isinstance(follow.message.content, str), "the answer after the tool result is not text")
    # The tool results reached the prompt, in LlamaIndex's own serialization of the turn.
    prompt = rendered_prompt(args.root, args.api_key, state["model"], to_openai_message_dicts(messages))
    expect_equal(follow.raw.usage.prompt_tokens, prompt["count"], "prompt_tokens against /tokenize")
    for out in outputs:
        expect(out in prompt["text"], f"the tool result {out!r} is missing from the prompt")
    return {"calls": [c.tool_kwargs for c in calls]}


def check_structured_predict() -> Dict[str, Any]:
    # Structured output through a forced function call, LlamaIndex's default for function-calling LLMs.
    person = make_llm(max_tokens=192).structured_predict(Person, PromptTemplate("Describe {who} as a person."), who="a robot")
    expect(isinstance(person, Person), f"structured_predict returned {type(person).__name__}")
    return {"person": person.model_dump()}


if __name__ == "__main__":
    for name, fn in [
        ("setup", check_setup),
        ("chat", check_chat),
        ("stream_chat", check_stream_chat),
        ("complete", check_complete),
        ("async_streams", check_async_streams),
        ("tool_call_and_result", check_tool_call_and_result),
        ("structured_predict", check_structured_predict),
    ]:
        runner.check(name, fn)
    runner.finish()
