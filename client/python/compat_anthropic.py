"""Drives a running grpst server with the official Python `anthropic` client, as its users do.

    python client/python/compat_anthropic.py 127.0.0.1:9997 [--api_key KEY] [--model NAME]

Without --api_key (or $OPENAI_API_KEY / $GRPST_API_KEY) the checks that a wrong key gets a 401 are
skipped, and the summary says so: a server without api_key takes any key.

The client talks to POST /v1/messages and /v1/messages/count_tokens (Anthropic's Messages API).
Every check asserts structure and invariants, never what the model says: it holds for any model,
the bundled random-weight one included. Forced tool calls are the exception that proves the rule:
the server's constrained decoding guarantees them, so their input must validate against the
tool's input_schema. Exits 0 when every check passed, 1 at the first failure; stdout is one line
of JSON (see compat_common.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from typing import Any, Dict, List, Literal, Optional

import anthropic
from pydantic import BaseModel, ConfigDict, Field

from compat_common import CheckFailed, Runner, expect, expect_equal, parse_args, rendered_prompt

args = parse_args(__doc__.splitlines()[0])
# The Anthropic SDK appends /v1/messages itself, so it takes the server's root; it sends the key
# as x-api-key, as it does to Anthropic.
client = anthropic.Anthropic(base_url=args.root, api_key=args.api_key, max_retries=0, timeout=120)
runner = Runner("anthropic", anthropic.__version__, args.root)
# Facts one check establishes and a later one builds on.
state: Dict[str, Any] = {}

USER = [{"role": "user", "content": "Tell me a short story about a robot."}]
# anthropic 2.x has no temperature argument any more; extra_body is how its users still send one.
# Greedy, so that repeated and streamed answers must be the same text.
GREEDY: Dict[str, Any] = dict(max_tokens=16, extra_body={"temperature": 0})
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use"}
# The raw events of a stream; MessageStream mixes in its own (text, input_json, ...) after them.
RAW_EVENTS = {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")


class GetWeather(BaseModel):
    """What get_current_weather's input_schema allows, to validate a forced call's input with."""

    model_config = ConfigDict(extra="forbid")
    city: str = Field(max_length=24)
    unit: Literal["celsius", "fahrenheit"]


class GetPostcode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str = Field(max_length=24)


# Hand-written, as Anthropic's tool-use guide writes them.
TOOLS = [
    {
        "name": "get_current_weather",
        "description": "Get the current weather in a city.",
        "input_schema": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 24, "description": "The city, e.g. Boston"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
    {
        "name": "get_postcode",
        "description": "Get the postcode of a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 24}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
]
INPUT_MODELS = {"get_current_weather": GetWeather, "get_postcode": GetPostcode}
WEATHER_QUESTION = [{"role": "user", "content": "What's the postcode of Boston and the weather there today?"}]


def text_of(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def prompt_tokens(usage: Any) -> int:
    """Anthropic counts prompt tokens read from the cache apart from input_tokens: the two together are the prompt."""
    return usage.input_tokens + (usage.cache_read_input_tokens or 0)


def message_ok(m: Any, max_tokens: int) -> None:
    expect_equal(m.type, "message", "type")
    expect_equal(m.role, "assistant", "role")
    expect_equal(m.model, state["model"], "model")
    expect(m.id.startswith("msg_"), f"id {m.id!r} does not start with msg_")
    expect(m.stop_reason in STOP_REASONS, f"stop_reason {m.stop_reason!r}")
    u = m.usage
    expect(u.input_tokens >= 0 and (u.cache_read_input_tokens or 0) >= 0, f"negative prompt counts in {u}")
    expect(prompt_tokens(u) > 0, f"no prompt tokens counted: {u}")
    expect(0 < u.output_tokens <= max_tokens, f"output_tokens {u.output_tokens} not in 1..{max_tokens}")
    if m.stop_reason == "max_tokens":
        expect_equal(u.output_tokens, max_tokens, "output_tokens of an answer cut by max_tokens")
    if m.stop_reason != "stop_sequence":
        expect(m.stop_sequence is None, f"stop_sequence {m.stop_sequence!r} with stop_reason {m.stop_reason}")


def check_models() -> Dict[str, Any]:
    page = client.models.list()
    ids = [m.id for m in page]
    # The fields the SDK's ModelInfo and page read, beside OpenAI's.
    for m in page.data:
        expect(m.type == "model" and m.display_name and m.created_at is not None, f"model fields {m}")
    expect(page.has_more is False and page.first_id == ids[0] and page.last_id == ids[-1], f"page fields {page}")
    expect(len(ids) >= 1, "models.list() returned no model")
    model = args.model or ids[0]
    expect(model in ids, f"model {model!r} is not among the served ones {ids}")
    state["model"] = model
    # grpst's own fields of a model, which the SDK keeps as extras: the context, and the engine's
    # prompt limit where that is tighter (the context overflow check sizes its prompts by them).
    listed = next(m for m in page.data if m.id == model)
    state["max_model_len"] = (listed.model_extra or {}).get("max_model_len")
    state["max_input_len"] = (listed.model_extra or {}).get("max_input_len")
    expect(isinstance(state["max_model_len"], int), f"no max_model_len in the model's fields {listed}")
    return {"models": ids, "model": model}


def check_create() -> Dict[str, Any]:
    m = client.messages.create(model=state["model"], messages=USER, **GREEDY)
    message_ok(m, GREEDY["max_tokens"])
    expect_equal([b.type for b in m.content], ["text"], "content block types of a plain answer")
    expect(len(m.content[0].text) > 0, "an empty text block")
    expect(m.stop_reason in ("end_turn", "max_tokens"), f"stop_reason {m.stop_reason!r} without tools or stop sequences")
    again = client.messages.create(model=state["model"], messages=USER, **GREEDY)
    expect(again.id != m.id, "two messages share an id")
    expect_equal(text_of(again), text_of(m), "a second greedy answer")
    expect_equal(prompt_tokens(again.usage), prompt_tokens(m.usage), "input + cache_read tokens of the same prompt again")
    expect_equal(again.usage.output_tokens, m.usage.output_tokens, "output_tokens of the second greedy answer")
    state["plain"] = m
    # The repeat's prompt may come from the prefix cache; whether it does is the server's
    # configuration, so it is reported, not required.
    return {"stop_reason": m.stop_reason, "usage": m.usage.model_dump(exclude_none=True), "repeat_cache_read_input_tokens": again.usage.cache_read_input_tokens}


def check_system() -> Dict[str, Any]:
    system = "You are a terse assistant. Answer in one sentence."
    m = client.messages.create(model=state["model"], system=system, messages=USER, **GREEDY)
    message_ok(m, GREEDY["max_tokens"])
    expect(prompt_tokens(m.usage) > prompt_tokens(state["plain"].usage), "the system prompt added no prompt tokens")
    # The same system prompt as a list of text blocks renders the same prompt, hence the same greedy answer.
    blocks = client.messages.create(model=state["model"], system=[{"type": "text", "text": system}], messages=USER, **GREEDY)
    expect_equal(prompt_tokens(blocks.usage), prompt_tokens(m.usage), "prompt tokens with the system prompt as text blocks")
    expect_equal(text_of(blocks), text_of(m), "the greedy answer with the system prompt as text blocks")
    # It reaches the template as the system turn: the chat equivalent renders to the same count.
    chat = rendered_prompt(args.root, args.api_key, state["model"], [{"role": "system", "content": system}, *USER])
    expect_equal(prompt_tokens(m.usage), chat["count"], "prompt tokens against /tokenize of the chat equivalent")
    expect(system in chat["text"], "the system prompt is missing from the rendered prompt")
    return {"prompt_tokens": prompt_tokens(m.usage)}


def check_stream() -> Dict[str, Any]:
    reference = state["plain"]
    with client.messages.stream(model=state["model"], messages=USER, **GREEDY) as stream:
        joined = "".join(stream.text_stream)
        final = stream.get_final_message()
    expect_equal(joined, text_of(final), "text_stream joined against get_final_message()'s text")
    expect_equal(joined, text_of(reference), "the streamed text against the greedy create()")
    expect_equal(final.stop_reason, reference.stop_reason, "stop_reason of the stream")
    expect_equal(final.usage.output_tokens, reference.usage.output_tokens, "output_tokens of the stream")
    expect_equal(prompt_tokens(final.usage), prompt_tokens(reference.usage), "input + cache_read tokens of the stream")
    message_ok(final, GREEDY["max_tokens"])

    # The event order Anthropic documents: message_start, then each block opened, its deltas and
    # closed, one message_delta, message_stop last.
    with client.messages.stream(model=state["model"], messages=USER, **GREEDY) as stream:
        events = [e for e in stream if e.type in RAW_EVENTS]
        final = stream.get_final_message()
    types = [e.type for e in events]
    expect_equal(types[0], "message_start", "the first event")
    expect_equal(types[-2:], ["message_delta", "message_stop"], "the last two events")
    expect_equal(types.count("message_delta"), 1, "message_delta events")
    expect_equal(events[0].message.id, final.id, "message_start's id against the final message's")
    open_index: Optional[int] = None
    next_index = 0
    for e in events[1:-2]:
        if e.type == "content_block_start":
            expect(open_index is None, f"block {e.index} opened while block {open_index} is open")
            expect_equal(e.index, next_index, "index of the next block opened")
            open_index, next_index = e.index, next_index + 1
        elif e.type == "content_block_delta":
            expect_equal(e.index, open_index, "the index of a delta (the open block)")
        elif e.type == "content_block_stop":
            expect_equal(e.index, open_index, "the index of content_block_stop")
            open_index = None
        else:
            raise CheckFailed(f"a {e.type} event between the blocks: {types}")
    expect(open_index is None, f"block {open_index} was never closed")
    expect_equal(next_index, len(final.content), "blocks opened against the final content")
    expect(types.count("content_block_delta") > 1, f"the text came in {types.count('content_block_delta')} delta(s)")
    expect_equal(text_of(final), text_of(reference), "the second stream's text")
    return {"events": len(types), "deltas": types.count("content_block_delta")}


def check_stop_sequences() -> Dict[str, Any]:
    body: Dict[str, Any] = dict(model=state["model"], messages=[{"role": "user", "content": "Say something long."}],
                                max_tokens=24, extra_body={"temperature": 0})
    full = text_of(client.messages.create(**body))
    # Two characters of the greedy answer that first occur past its start, so that a stop there
    # leaves some text before it.
    stop = next((full[i:i + 2] for i in range(1, len(full) - 2) if full.find(full[i:i + 2]) == i and full[i:i + 2].strip()), None)
    expect(stop is not None, f"no stop string to pick from the greedy answer {full!r}")
    cut = client.messages.create(**body, stop_sequences=["never-in-this-answer-\u2603", stop])
    expect_equal(cut.stop_reason, "stop_sequence", "stop_reason")
    expect_equal(cut.stop_sequence, stop, "stop_sequence (the one that matched)")
    expect_equal(text_of(cut), full[: full.index(stop)], "the text up to the stop sequence")
    with client.messages.stream(**body, stop_sequences=[stop]) as stream:
        joined = "".join(stream.text_stream)
        final = stream.get_final_message()
    expect_equal((final.stop_reason, final.stop_sequence), ("stop_sequence", stop), "the stream's stop_reason and stop_sequence")
    expect_equal(joined, text_of(cut), "the streamed text up to the stop sequence")
    return {"stop_sequence": stop, "output_tokens": cut.usage.output_tokens}


def check_count_tokens() -> Dict[str, Any]:
    counts = {}
    cases: Dict[str, Dict[str, Any]] = {
        "plain": dict(messages=USER),
        "system": dict(messages=USER, system="You are a terse assistant."),
        "tools": dict(messages=WEATHER_QUESTION, tools=TOOLS),
        "conversation": dict(messages=[*USER, {"role": "assistant", "content": "Once upon a time."}, {"role": "user", "content": "Go on."}]),
    }
    for name, prompt in cases.items():
        counted = client.messages.count_tokens(model=state["model"], **prompt).input_tokens
        m = client.messages.create(model=state["model"], max_tokens=2, **prompt)
        expect_equal(counted, prompt_tokens(m.usage), f"count_tokens ({name}) against input + cache_read tokens of the same prompt")
        counts[name] = counted
    expect(counts["tools"] > counts["plain"], "the tools added no prompt tokens")
    return {"counts": counts}


def validate_uses(m: Any, names: set) -> List[Any]:
    uses = [b for b in m.content if b.type == "tool_use"]
    expect(len(uses) >= 1, f"a forced tool call answered without tool_use: {[b.type for b in m.content]}")
    expect_equal([b.type for b in m.content], ["tool_use"] * len(uses), "content of a forced call (tool_use blocks only)")
    expect_equal(m.stop_reason, "tool_use", "stop_reason")
    expect_equal(len({u.id for u in uses}), len(uses), "distinct tool_use ids")
    for u in uses:
        expect(u.id.startswith("toolu_"), f"tool_use id {u.id!r}")
        expect(u.name in names, f"tool_use of {u.name!r}, not one of {sorted(names)}")
        expect(isinstance(u.input, dict), f"input of {u.name} is a {type(u.input).__name__}")
        try:
            INPUT_MODELS[u.name].model_validate(u.input, strict=True)
        except Exception as err:
            raise CheckFailed(f"{u.name}'s input {u.input} does not validate against its input_schema: {err}") from err
    return uses


def check_tool_use() -> Dict[str, Any]:
    ask = dict(model=state["model"], tools=TOOLS, messages=WEATHER_QUESTION, max_tokens=160)
    m = client.messages.create(**ask, tool_choice={"type": "any"})
    uses = validate_uses(m, set(INPUT_MODELS))
    named = client.messages.create(**ask, tool_choice={"type": "tool", "name": "get_postcode", "disable_parallel_tool_use": True})
    expect_equal([u.name for u in validate_uses(named, {"get_postcode"})], ["get_postcode"], "the named tool, called once")
    # Streamed, the input arrives as input_json deltas that the SDK parses into the same kind of input.
    partial: Dict[int, str] = {}
    with client.messages.stream(**ask, tool_choice={"type": "any"}) as stream:
        for e in stream:
            if e.type == "content_block_delta" and e.delta.type == "input_json_delta":
                partial[e.index] = partial.get(e.index, "") + e.delta.partial_json
        final = stream.get_final_message()
    validate_uses(final, set(INPUT_MODELS))
    for i, block in enumerate(final.content):
        expect_equal(json.loads(partial.get(i, "null")), block.input, f"block {i}: its input_json deltas joined")

    # The follow-up turn as Anthropic's guide writes it: the assistant's content sent back as it
    # came, and one tool_result per call in the next user turn.
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": f"result {i} of {u.name}"} for i, u in enumerate(uses)]
    follow_messages = [*WEATHER_QUESTION, {"role": "assistant", "content": m.content}, {"role": "user", "content": results}]
    follow = client.messages.create(model=state["model"], tools=TOOLS, messages=follow_messages, max_tokens=16)
    message_ok(follow, 16)
    counted = client.messages.count_tokens(model=state["model"], tools=TOOLS, messages=follow_messages).input_tokens
    expect_equal(prompt_tokens(follow.usage), counted, "the follow-up's input + cache_read tokens against count_tokens")
    # The calls and results reach the template as chat's tool_calls (arguments as the object, which
    # the template writes with tojson) and tool turns do: the chat equivalent renders the same prompt.
    chat_messages = [
        *WEATHER_QUESTION,
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": u.id, "type": "function", "function": {"name": u.name, "arguments": u.input}}
            for u in uses]},
        *({"role": "tool", "tool_call_id": r["tool_use_id"], "content": r["content"]} for r in results),
    ]
    chat_tools = [{"type": "function", "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]}} for t in TOOLS]
    chat = rendered_prompt(args.root, args.api_key, state["model"], chat_messages, chat_tools)
    expect_equal(counted, chat["count"], "the follow-up's prompt against /tokenize of the chat equivalent")
    for r in results:
        expect(r["content"] in chat["text"], f"{r['content']!r} is missing from the rendered prompt")
    return {"calls": [u.name for u in uses], "inputs": [u.input for u in uses], "follow_up_prompt_tokens": counted,
            "follow_up_cache_read_input_tokens": follow.usage.cache_read_input_tokens}


def check_thinking() -> Dict[str, Any]:
    # Anthropic wants max_tokens above budget_tokens; this server takes the budget as a hint it
    # does not enforce, so a small max_tokens keeps the check quick on a short context.
    thinking = {"type": "enabled", "budget_tokens": 1024}
    body: Dict[str, Any] = dict(model=state["model"], messages=USER, thinking=thinking, max_tokens=32, extra_body={"temperature": 0})
    m = client.messages.create(**body)
    message_ok(m, 32)
    types = [b.type for b in m.content]
    expect(set(types) <= {"thinking", "text"}, f"content block types {types}")
    expect(types == sorted(types, key=lambda t: t != "thinking"), f"a thinking block after the text: {types}")
    for b in m.content:
        if b.type == "thinking":
            expect(isinstance(b.thinking, str) and isinstance(b.signature, str), f"a thinking block without its strings: {b}")
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    expect_equal([b.model_dump(exclude={"citations"}) for b in final.content], [b.model_dump(exclude={"citations"}) for b in m.content],
                 "the streamed blocks against the greedy create()")
    on = client.messages.count_tokens(model=state["model"], messages=USER, thinking=thinking).input_tokens
    off = client.messages.count_tokens(model=state["model"], messages=USER, thinking={"type": "disabled"}).input_tokens
    expect_equal(prompt_tokens(m.usage), on, "input + cache_read tokens against count_tokens with thinking on")
    # Qwen3's template closes an empty think block in the prompt when thinking is off: the two differ.
    expect(on < off, f"thinking on renders {on} prompt tokens, off {off}: thinking did not reach the template")
    return {"blocks": types, "prompt_tokens_on": on, "prompt_tokens_off": off}


def expect_status_error(kind: type, status: int, error_type: str, call: Any) -> anthropic.APIStatusError:
    try:
        call()
    except kind as err:
        expect_equal(err.status_code, status, f"{kind.__name__}.status_code")
        expect_equal(err.type, error_type, f"{kind.__name__}.type (error.type of the body)")
        expect(isinstance(err.body, dict) and err.body.get("type") == "error", f"not Anthropic's error envelope: {err.body}")
        expect(bool(err.api_message), f"the error body has no message: {err.body}")
        return err
    raise CheckFailed(f"expected {kind.__name__} ({status}), the call succeeded")


def check_errors() -> Dict[str, Any]:
    model = state["model"]
    hi = [{"role": "user", "content": "hi"}]
    seen = []
    seen.append(expect_status_error(anthropic.NotFoundError, 404, "not_found_error",
                                    lambda: client.messages.create(model="no-such-model", max_tokens=4, messages=hi)))

    def stream_unknown_model() -> None:
        # A stream that cannot start is refused before any event: the same error, raised on entering.
        with client.messages.stream(model="no-such-model", max_tokens=4, messages=hi) as stream:
            stream.until_done()

    seen.append(expect_status_error(anthropic.NotFoundError, 404, "not_found_error", stream_unknown_model))
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    bad = expect_status_error(anthropic.BadRequestError, 400, "invalid_request_error",
                              lambda: client.messages.create(model=model, max_tokens=4, messages=[{"role": "user", "content": [image]}]))
    expect("image" in bad.api_message, f"the refusal does not name the image block: {bad.api_message!r}")
    seen.append(bad)
    facts: Dict[str, Any] = {}
    if args.key_given:
        wrong = anthropic.Anthropic(base_url=args.root, api_key=f"wrong-{uuid.uuid4().hex}", max_retries=0, timeout=60)
        seen.append(expect_status_error(anthropic.AuthenticationError, 401, "authentication_error",
                                        lambda: wrong.messages.create(model=model, max_tokens=4, messages=hi)))
    else:
        facts["skipped"] = skip_auth("errors")
    return {"types": [e.type for e in seen], "statuses": [e.status_code for e in seen], **facts}


def check_context_overflow() -> Dict[str, Any]:
    # Anthropic's own wording, which clients tell an overflow by: LangChain's ChatAnthropic raises
    # its ContextOverflowError when "prompt is too long" is in the error's message, and agents
    # compact the conversation on it, or parse the max_tokens form's numbers to retry.
    model, context = state["model"], state["max_model_len"]
    longest = min(context - 1, state["max_input_len"] or context)
    long = [{"role": "user", "content": "word " * context}]
    # count_tokens counts a prompt past the context, as Anthropic's does: a client sees by how much.
    counted = client.messages.count_tokens(model=model, messages=long).input_tokens
    expect(counted > longest, f"count_tokens counted {counted} tokens for {context} words")
    too_long = f"prompt is too long: {counted} tokens > {longest} maximum"
    err = expect_status_error(anthropic.BadRequestError, 400, "invalid_request_error",
                              lambda: client.messages.create(model=model, max_tokens=4, messages=long))
    expect_equal(err.api_message, too_long, "the overflow's message")
    expect(too_long in err.message, f"the exception's message does not hold Anthropic's: {err.message!r}")

    def stream_too_long() -> None:
        with client.messages.stream(model=model, max_tokens=4, messages=long) as stream:
            stream.until_done()

    expect_equal(expect_status_error(anthropic.BadRequestError, 400, "invalid_request_error", stream_too_long).api_message,
                 too_long, "the streamed overflow's message")
    prompt = client.messages.count_tokens(model=model, messages=USER).input_tokens
    no_room = expect_status_error(anthropic.BadRequestError, 400, "invalid_request_error",
                                  lambda: client.messages.create(model=model, max_tokens=context, messages=USER))
    expect_equal(no_room.api_message, f"input length and `max_tokens` exceed context limit: {prompt} + {context} > {context}, "
                 "decrease input length or `max_tokens` and try again", "the message of a max_tokens past the context")
    return {"prompt_tokens": counted, "maximum": longest, "messages": [err.api_message, no_room.api_message]}


def skip_auth(check: str) -> str:
    """Without --api_key the server may take any key: the wrong-key part of a check is skipped, and said so."""
    why = "the 401 for a wrong key (no --api_key given; pass the server's key to check it)"
    print(f"{check}: skipped {why}", file=sys.stderr, flush=True)
    return why


def check_request_id() -> Dict[str, Any]:
    raw = client.messages.with_raw_response.create(model=state["model"], messages=USER, max_tokens=2)
    header = raw.headers.get("x-request-id")
    expect(bool(header and REQUEST_ID.match(header)), f"x-request-id {header!r}")
    message_ok(raw.parse(), 2)
    mine = f"compat-{uuid.uuid4().hex}"
    echoed = client.messages.with_raw_response.create(model=state["model"], messages=USER, max_tokens=2, extra_headers={"X-Request-Id": mine})
    expect_equal(echoed.headers.get("x-request-id"), mine, "the client's own x-request-id echoed")
    # The SDK's own request_id reads Anthropic's request-id header: the same id.
    expect_equal(raw.parse()._request_id, header, "the SDK's _request_id (Anthropic's request-id header)")
    facts: Dict[str, Any] = {"request_id": header, "client_request_id": mine, "sdk_request_id": raw.parse()._request_id}
    if not args.key_given:
        return {**facts, "skipped": skip_auth("request_id")}
    wrong = anthropic.Anthropic(base_url=args.root, api_key=f"wrong-{uuid.uuid4().hex}", max_retries=0, timeout=60)
    try:
        wrong.messages.create(model=state["model"], max_tokens=2, messages=USER)
        raise CheckFailed("a wrong key was served")
    except anthropic.AuthenticationError as err:
        expect(bool(err.request_id), "an error without the SDK's request_id")
        # The SDK sends its key as x-api-key: the refusal names that header among the ways to send it.
        expect("x-api-key" in str(err), f"the 401 does not name x-api-key: {err}")
    return facts


async def one_stream(aclient: anthropic.AsyncAnthropic, i: int, max_tokens: int) -> Dict[str, Any]:
    pieces: List[str] = []
    first = last = None
    async with aclient.messages.stream(model=state["model"], max_tokens=max_tokens,
                                       messages=[{"role": "user", "content": f"Count to {i + 3}, please."}]) as stream:
        async for text in stream.text_stream:
            now = time.monotonic()
            pieces.append(text)
            first = first or now
            last = now
        final = await stream.get_final_message()
    return {"text": "".join(pieces), "final": final, "first": first, "last": last or time.monotonic()}


async def async_streams(count: int, max_tokens: int) -> List[Dict[str, Any]]:
    async with anthropic.AsyncAnthropic(base_url=args.root, api_key=args.api_key, max_retries=0, timeout=120) as aclient:
        return await asyncio.gather(*(one_stream(aclient, i, max_tokens) for i in range(count)))


def check_async_streams() -> Dict[str, Any]:
    count, max_tokens = 6, 24
    results = asyncio.run(async_streams(count, max_tokens))
    for i, r in enumerate(results):
        message_ok(r["final"], max_tokens)
        expect_equal(r["text"], text_of(r["final"]), f"stream {i}: text_stream joined against the final message")
        expect(len(r["text"]) > 0 and r["first"] is not None, f"stream {i}: no text")
    expect_equal(len({r["final"].id for r in results}), count, "distinct message ids")
    # The streams were answered side by side, not one after another: count those in flight at
    # the moment the first one finished.
    first_done = min(r["last"] for r in results)
    in_flight = sum(1 for r in results if r["first"] <= first_done)
    expect(in_flight >= 2, f"only {in_flight} stream(s) had started answering when the first one ended")
    return {"streams": count, "in_flight_at_first_finish": in_flight}


if __name__ == "__main__":
    for name, fn in [
        ("models", check_models),
        ("create", check_create),
        ("system", check_system),
        ("stream", check_stream),
        ("stop_sequences", check_stop_sequences),
        ("count_tokens", check_count_tokens),
        ("tool_use", check_tool_use),
        ("thinking", check_thinking),
        ("errors", check_errors),
        ("context_overflow", check_context_overflow),
        ("request_id", check_request_id),
        ("async_streams", check_async_streams),
    ]:
        runner.check(name, fn)
    runner.finish()
