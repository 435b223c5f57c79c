"""Drives a running grpst server with the official Python `ollama` client, as its users do.

    python client/python/compat_ollama.py 127.0.0.1:9997 [--api_key KEY] [--model NAME]

The client talks to Ollama's API (/api/chat, /api/generate, /api/tags, /api/show, /api/ps). Every
check asserts structure and invariants, never what the model says: it holds for any model, the
bundled random-weight one included. A chat turn must be the turn /v1/chat/completions gives for
the same conversation, so both are asked and compared. Exits 0 when every check passed, 1 at the
first failure; stdout is one line of JSON (see compat_common.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
import uuid
from importlib.metadata import version
from typing import Any, Dict, List

import ollama
from pydantic import BaseModel, ConfigDict, Field

from compat_common import CheckFailed, Runner, expect, expect_equal, parse_args, post_json, rendered_prompt

args = parse_args(__doc__.splitlines()[0])
# Ollama's client takes the server's root and any headers; the key goes in as a bearer token.
client = ollama.Client(host=args.root, headers={"Authorization": f"Bearer {args.api_key}"}, timeout=120)
runner = Runner("ollama", version("ollama"), args.root)
state: Dict[str, Any] = {}

USER = [{"role": "user", "content": "Tell me a short story about a robot."}]
# Greedy and short, with thinking off: repeated and streamed answers must be the same text.
GREEDY: Dict[str, Any] = dict(think=False, options={"temperature": 0, "num_predict": 16})
DONE_REASONS = {"stop", "length"}


def get_current_weather(city: str, unit: str) -> str:
    """Get the current weather in a city.

    Args:
      city: The city, e.g. Boston
      unit: celsius or fahrenheit
    """
    return f"18 degrees {unit} in {city}"


# The same tool as an OpenAI-shaped dict, which both APIs take.
WEATHER_TOOL: Dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}


def served_id() -> str:
    """The model's id on the OpenAI side (Ollama's clients see it tagged, "qwen3:latest")."""
    req = urllib.request.Request(f"{args.base_url}/models", headers={"authorization": f"Bearer {args.api_key}"})
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read().decode("utf-8"))["data"][0]["id"]


def openai_chat(messages: List[Dict[str, Any]], max_tokens: int) -> Dict[str, Any]:
    return post_json(f"{args.base_url}/chat/completions", {"model": state["id"], "messages": messages, "max_tokens": max_tokens, "temperature": 0, "enable_thinking": False}, args.api_key)


def done_ok(r: Any, num_predict: int) -> None:
    expect(r.done is True, f"done is {r.done!r}")
    expect(r.done_reason in DONE_REASONS, f"done_reason {r.done_reason!r}")
    expect(r.prompt_eval_count > 0, f"prompt_eval_count {r.prompt_eval_count}")
    expect(0 < r.eval_count <= num_predict, f"eval_count {r.eval_count} not in 1..{num_predict}")
    if r.done_reason == "length":
        expect_equal(r.eval_count, num_predict, "eval_count of an answer cut by num_predict")
    expect(r.total_duration >= r.eval_duration >= 0, f"durations {r.total_duration} / {r.eval_duration}")


def check_models() -> Dict[str, Any]:
    listed = client.list()
    names = [m.model for m in listed.models]
    expect(len(names) >= 1, "list() returned no model")
    model = args.model or names[0]
    expect(model in names, f"model {model!r} is not among the served ones {names}")
    state["model"] = model
    state["id"] = served_id()
    expect(model in (state["id"], f"{state['id']}:latest"), f"Ollama's name {model!r} for the served id {state['id']!r}")
    entry = listed.models[names.index(model)]
    expect(entry.details is not None and entry.details.family == "qwen3", f"details {entry.details}")
    expect(entry.modified_at is not None and entry.digest, f"entry {entry}")
    shown = client.show(model)
    expect(shown.modelinfo and shown.modelinfo.get("general.architecture") == "qwen3", f"model_info {shown.modelinfo}")
    expect({"completion", "tools", "thinking"} <= set(shown.capabilities or []), f"capabilities {shown.capabilities}")
    expect(bool(shown.template), "show() has no template")
    running = client.ps()
    expect([m.model for m in running.models] == [model], f"ps() lists {[m.model for m in running.models]}")
    context = running.models[0].context_length
    expect(isinstance(context, int) and context > 0, f"context_length {context!r}")
    return {"models": names, "model": model, "context_length": context}


def check_chat() -> Dict[str, Any]:
    r = client.chat(model=state["model"], messages=USER, **GREEDY)
    done_ok(r, 16)
    expect_equal(r.message.role, "assistant", "role")
    expect(r.message.thinking is None and not r.message.tool_calls, f"thinking or tool calls with think off and no tools: {r.message}")
    c = openai_chat(USER, 16)
    expect_equal(r.message.content, c["choices"][0]["message"]["content"], "the chat answer against /v1/chat/completions")
    expect_equal(r.prompt_eval_count, c["usage"]["prompt_tokens"], "prompt_eval_count against prompt_tokens")
    expect_equal(r.eval_count, c["usage"]["completion_tokens"], "eval_count against completion_tokens")
    state["chat"] = r
    return {"done_reason": r.done_reason, "eval_count": r.eval_count}


def check_chat_stream() -> Dict[str, Any]:
    parts = list(client.chat(model=state["model"], messages=USER, stream=True, **GREEDY))
    expect(len(parts) >= 2, f"{len(parts)} part(s)")
    expect(all(p.done is False for p in parts[:-1]), "a part before the last one is done")
    whole = state["chat"]
    expect_equal("".join(p.message.content or "" for p in parts), whole.message.content, "the streamed parts joined")
    last = parts[-1]
    done_ok(last, 16)
    expect_equal((last.done_reason, last.eval_count), (whole.done_reason, whole.eval_count), "the last part's done_reason and eval_count")
    return {"parts": len(parts)}


def check_generate() -> Dict[str, Any]:
    g = client.generate(model=state["model"], system="Be brief.", prompt=USER[0]["content"], **GREEDY)
    done_ok(g, 16)
    c = client.chat(model=state["model"], messages=[{"role": "system", "content": "Be brief."}, *USER], **GREEDY)
    expect_equal(g.response, c.message.content, "generate with system against the chat of the same turns")
    prompt = "The capital of France is"
    raw = client.generate(model=state["model"], prompt=prompt, raw=True, options={"temperature": 0, "num_predict": 8})
    done_ok(raw, 8)
    completion = post_json(f"{args.base_url}/completions", {"model": state["id"], "prompt": prompt, "max_tokens": 8, "temperature": 0}, args.api_key)
    expect_equal(raw.response, completion["choices"][0]["text"], "a raw generation against /v1/completions")
    loaded = client.generate(model=state["model"], prompt="")
    expect_equal((loaded.done, loaded.done_reason), (True, "load"), "an empty prompt (a load request)")
    return {"raw_eval_count": raw.eval_count}


class Pet(BaseModel):
    # Bounded, so that any model's answer fits in num_predict.
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=12)
    age: int = Field(ge=0, le=30)
    vaccinated: bool


def check_structured() -> Dict[str, Any]:
    # As Ollama's structured-outputs guide writes it: the schema of a pydantic model as format.
    r = client.chat(model=state["model"], messages=[{"role": "user", "content": "Describe a pet as JSON."}], format=Pet.model_json_schema(), think=False, options={"temperature": 0, "num_predict": 120})
    expect_equal(r.done_reason, "stop", "done_reason of a schema-bound answer that had room to finish")
    pet = Pet.model_validate_json(r.message.content)
    return {"pet": pet.model_dump()}


def check_tools() -> Dict[str, Any]:
    # A Python function as the tool, as Ollama's client turns it into one from its docstring.
    r = client.chat(model=state["model"], messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[get_current_weather], think=False, options={"num_predict": 8})
    expect(r.done is True, "a turn with a function tool did not finish")
    for call in r.message.tool_calls or []:
        expect(isinstance(call.function.arguments, dict), f"arguments {call.function.arguments!r} are not an object")
    # A whole tool round as the client's types write it: the call with its arguments as an object, the result as a tool message.
    call = ollama.Message.ToolCall(function=ollama.Message.ToolCall.Function(name="get_current_weather", arguments={"city": "Paris", "unit": "celsius"}))
    messages: List[Any] = [
        {"role": "user", "content": "Weather in Paris?"},
        ollama.Message(role="assistant", content="", tool_calls=[call]),
        {"role": "tool", "content": get_current_weather("Paris", "celsius"), "tool_name": "get_current_weather"},
    ]
    after = client.chat(model=state["model"], messages=messages, tools=[WEATHER_TOOL], think=False, options={"temperature": 0, "num_predict": 4})
    # The prompt is the one the same conversation renders on the OpenAI side (arguments as an object there too).
    same = [
        messages[0],
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_current_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "content": messages[2]["content"], "tool_call_id": "call_1"},
    ]
    # The tool as the client sends it: through its pydantic Tool, which sets the keys in its own order.
    sent_tool = ollama.Tool.model_validate(WEATHER_TOOL).model_dump(exclude_none=True)
    rendered = rendered_prompt(args.root, args.api_key, state["id"], same, tools=[sent_tool])
    expect_equal(after.prompt_eval_count, rendered["count"], "prompt_eval_count of the tool round against /tokenize")
    expect('{"name": "get_current_weather", "arguments": {"city": "Paris", "unit": "celsius"}}' in rendered["text"], "the call is not in the prompt as Qwen3's template writes it")
    return {"calls_in_first_turn": len(r.message.tool_calls or [])}


def check_thinking() -> Dict[str, Any]:
    on = client.chat(model=state["model"], messages=USER, think=True, options={"num_predict": 8})
    expect(on.done is True and on.eval_count > 0, f"a turn with thinking on: {on}")
    expect(on.message.thinking is None or isinstance(on.message.thinking, str), f"thinking {on.message.thinking!r}")
    level = client.chat(model=state["model"], messages=USER, think="low", options={"num_predict": 2})
    expect_equal(level.prompt_eval_count, on.prompt_eval_count, "prompt_eval_count with think 'low' against think true")
    off = state["chat"]
    expect(off.prompt_eval_count != on.prompt_eval_count, "think false and true rendered the same prompt (Qwen3 closes the think block when it is off)")
    return {}


def expect_response_error(status: int, call: Any) -> ollama.ResponseError:
    try:
        call()
    except ollama.ResponseError as err:
        expect_equal(err.status_code, status, f"status of {err.error!r}")
        return err
    raise CheckFailed(f"no ResponseError {status}")


def check_errors() -> Dict[str, Any]:
    hi = [{"role": "user", "content": "hi"}]
    missing = expect_response_error(404, lambda: client.chat(model="no-such-model", messages=hi))
    expect(missing.error.startswith("model 'no-such-model' not found"), f"404 message {missing.error!r}")

    def stream_missing() -> None:
        for _ in client.chat(model="no-such-model", messages=hi, stream=True):
            pass

    expect_response_error(404, stream_missing)
    bad = expect_response_error(400, lambda: client.chat(model=state["model"], messages=hi, options={"temperature": "hot"}))
    expect("options.temperature" in bad.error, f"the refusal does not name the option: {bad.error!r}")
    pull = expect_response_error(400, lambda: client.pull(state["model"]))
    expect("grpst build" in pull.error, f"the pull refusal does not say what to do instead: {pull.error!r}")
    if not args.key_given:
        # A server without api_key takes any key: the wrong-key check needs --api_key.
        print("errors: skipped the 401 for a wrong key (no --api_key given; pass the server's key to check it)", file=sys.stderr, flush=True)
        return {"statuses": [404, 404, 400, 400], "skipped": "the 401 for a wrong key (no --api_key given)"}
    wrong = ollama.Client(host=args.root, headers={"Authorization": f"Bearer wrong-{uuid.uuid4().hex}"}, timeout=60)
    expect_response_error(401, lambda: wrong.list())
    return {"statuses": [404, 404, 400, 400, 401]}


async def async_streams(count: int) -> List[Dict[str, Any]]:
    aclient = ollama.AsyncClient(host=args.root, headers={"Authorization": f"Bearer {args.api_key}"}, timeout=120)

    async def one(i: int) -> Dict[str, Any]:
        first = last = None
        text = []
        done = None
        async for part in await aclient.chat(model=state["model"], messages=[{"role": "user", "content": f"Story number {i}."}], stream=True, think=False, options={"num_predict": 32}):
            now = time.monotonic()
            if part.message.content:
                first = first or now
                text.append(part.message.content)
            last = now
            if part.done:
                done = part
        return {"first": first, "last": last, "text": "".join(text), "done": done}

    return await asyncio.gather(*(one(i) for i in range(count)))


def check_async_streams() -> Dict[str, Any]:
    results = asyncio.run(async_streams(4))
    for i, r in enumerate(results):
        expect(r["done"] is not None and r["done"].eval_count > 0, f"stream {i} did not end done")
        expect(len(r["text"]) > 0 and r["first"] is not None, f"stream {i}: no text")
    first_done = min(r["last"] for r in results)
    in_flight = sum(1 for r in results if r["first"] <= first_done)
    expect(in_flight >= 2, f"only {in_flight} stream(s) had started answering when the first one ended")
    return {"streams": len(results), "in_flight_at_first_finish": in_flight}


if __name__ == "__main__":
    for name, fn in [
        ("models", check_models),
        ("chat", check_chat),
        ("chat_stream", check_chat_stream),
        ("generate", check_generate),
        ("structured", check_structured),
        ("tools", check_tools),
        ("thinking", check_thinking),
        ("errors", check_errors),
        ("async_streams", check_async_streams),
    ]:
        runner.check(name, fn)
    runner.finish()
