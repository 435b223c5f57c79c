"""Drives a running grpst server with the official Python `openai` client, as its users do.

    python client/python/compat_openai.py 127.0.0.1:9997 [--api_key KEY] [--model NAME]

Every check asserts structure and invariants, never what the model says: it holds for any model,
the bundled random-weight one included. Structured outputs and forced tool calls are the
exception that proves the rule: the server's constrained decoding guarantees them, so their
answers must parse and validate. Exits 0 when every check passed, 1 at the first failure; stdout
is one line of JSON (see compat_common.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Annotated, Any, Dict, List, Literal, Optional

import openai
from pydantic import BaseModel, Field

from compat_common import CheckFailed, Runner, expect, expect_equal, parse_args, rendered_prompt

args = parse_args(__doc__.splitlines()[0])
client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)
runner = Runner("openai", openai.__version__, args.root)
# Facts one check establishes and a later one builds on.
state: Dict[str, Any] = {}

USER = [{"role": "user", "content": "Tell me a short story about a robot."}]
# Greedy, so that repeated and streamed answers must be the same text.
GREEDY = dict(temperature=0, seed=7, max_tokens=16)


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int = Field(ge=0, le=120)
    role: Literal["admin", "user", "guest"]
    tags: List[Annotated[str, Field(max_length=12)]] = Field(max_length=3)
    email: Optional[str] = Field(max_length=30)


class GetWeather(BaseModel):
    """Get the current weather in a city."""

    city: str = Field(max_length=24, description="The city, e.g. Boston")
    unit: Literal["celsius", "fahrenheit"]


WEATHER_TOOL = openai.pydantic_function_tool(GetWeather, name="get_current_weather")
# A hand-written tool next to the pydantic one, marked strict so that parse() accepts it too.
POSTCODE_TOOL = {
    "type": "function",
    "function": {
        "name": "get_postcode",
        "description": "Get the postcode of a city.",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 24}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [WEATHER_TOOL, POSTCODE_TOOL]
TOOL_NAMES = {"get_current_weather", "get_postcode"}
WEATHER_QUESTION = [{"role": "user", "content": "What's the postcode of Boston and the weather there today?"}]
REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")


def check_models() -> Dict[str, Any]:
    models = client.models.list()
    ids = [m.id for m in models.data]
    expect(len(ids) >= 1, "models.list() returned no model")
    model = args.model or ids[0]
    expect(model in ids, f"model {model!r} is not among the served ones {ids}")
    one = client.models.retrieve(model)
    expect_equal(one.id, model, "models.retrieve(model).id")
    expect_equal(one.object, "model", "models.retrieve(model).object")
    # grpst's extra field: the SDK keeps unknown fields, so clients can size prompts by it.
    max_len = (one.model_extra or {}).get("max_model_len")
    expect(isinstance(max_len, int) and max_len > 0, f"max_model_len missing from the model object: {one}")
    state.update(model=model, max_model_len=max_len)
    return {"models": ids, "model": model, "max_model_len": max_len}


def usage_ok(usage: Any, max_completion: int) -> None:
    expect(usage is not None, "no usage in the response")
    expect_equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, "usage.total_tokens")
    expect(0 < usage.completion_tokens <= max_completion, f"completion_tokens {usage.completion_tokens} not in 1..{max_completion}")


def check_chat() -> Dict[str, Any]:
    r = client.chat.completions.create(model=state["model"], messages=USER, **GREEDY)
    expect(r.id.startswith("chatcmpl-"), f"id {r.id!r} does not start with chatcmpl-")
    expect_equal(r.object, "chat.completion", "object")
    expect_equal(r.model, state["model"], "model")
    expect_equal(len(r.choices), 1, "number of choices")
    choice = r.choices[0]
    expect_equal(choice.message.role, "assistant", "message.role")
    expect(isinstance(choice.message.content, str) and len(choice.message.content) > 0, f"empty content: {choice.message}")
    expect(choice.message.tool_calls is None, "tool_calls in an answer to a request without tools")
    expect(choice.finish_reason in ("stop", "length"), f"finish_reason {choice.finish_reason!r}")
    usage_ok(r.usage, GREEDY["max_tokens"])
    if choice.finish_reason == "length":
        expect_equal(r.usage.completion_tokens, GREEDY["max_tokens"], "completion_tokens of an answer cut by max_tokens")
    again = client.chat.completions.create(model=state["model"], messages=USER, **GREEDY)
    expect(again.id != r.id, "two responses share an id")
    expect_equal(again.choices[0].message.content, choice.message.content, "a second greedy answer")
    state["chat"] = r
    return {"finish_reason": choice.finish_reason, "completion_tokens": r.usage.completion_tokens}


def check_chat_stream() -> Dict[str, Any]:
    reference = state["chat"]
    stream = client.chat.completions.create(model=state["model"], messages=USER, stream=True, stream_options={"include_usage": True}, **GREEDY)
    chunks = list(stream)
    expect(len(chunks) >= 3, f"only {len(chunks)} chunks")
    expect_equal({c.id for c in chunks}, {chunks[0].id}, "the ids of one stream's chunks")
    expect(all(c.object == "chat.completion.chunk" for c in chunks), "a chunk whose object is not chat.completion.chunk")
    expect_equal(chunks[0].choices[0].delta.role, "assistant", "the first delta's role")
    # include_usage: every chunk carries usage null but the last, which has no choices and the usage.
    expect(all(c.usage is None for c in chunks[:-1]), "usage on a chunk before the last")
    last = chunks[-1]
    expect_equal(last.choices, [], "the usage chunk's choices")
    usage_ok(last.usage, GREEDY["max_tokens"])
    expect_equal(last.usage.prompt_tokens, reference.usage.prompt_tokens, "streamed usage.prompt_tokens")
    expect_equal(last.usage.completion_tokens, reference.usage.completion_tokens, "streamed usage.completion_tokens")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expect_equal(text, reference.choices[0].message.content, "the streamed pieces joined")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    expect_equal(finishes, [reference.choices[0].finish_reason], "the stream's finish_reason")
    return {"chunks": len(chunks), "usage": last.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})}


def check_chat_logprobs() -> Dict[str, Any]:
    r = client.chat.completions.create(model=state["model"], messages=USER, logprobs=True, top_logprobs=2, **GREEDY)
    content = r.choices[0].logprobs.content
    expect_equal(len(content), r.usage.completion_tokens, "logprobs entries (one per generated token)")
    for entry in content:
        expect(entry.logprob <= 0, f"logprob {entry.logprob} > 0")
        expect_equal(len(entry.top_logprobs), 2, "top_logprobs per token")
        # Greedy: the chosen token is the most likely one.
        best = max(t.logprob for t in entry.top_logprobs)
        expect(abs(entry.logprob - best) < 1e-4, f"greedy chose {entry.token!r} ({entry.logprob}) over a token at {best}")
    # The bytes of the chosen tokens are the answer's bytes (a token may split a character); an
    # end token has its entry too but no text in the answer.
    visible = content[:-1] if r.choices[0].finish_reason == "stop" else content
    joined = b"".join(bytes(e.bytes) for e in visible).decode("utf-8", errors="replace")
    expect_equal(joined, r.choices[0].message.content, "the logprob tokens' bytes joined")
    return {"tokens": len(content)}


def check_structured_parse() -> Dict[str, Any]:
    r = client.chat.completions.parse(model=state["model"], messages=[{"role": "user", "content": "Describe a person as JSON."}],
                                      response_format=Person, max_tokens=256, seed=3)
    message = r.choices[0].message
    expect_equal(r.choices[0].finish_reason, "stop", "finish_reason of a structured answer")
    expect(isinstance(message.parsed, Person), f"parsed is {type(message.parsed).__name__}, not Person")
    expect_equal(Person.model_validate_json(message.content), message.parsed, "the content validated again")
    expect(message.refusal is None, "a refusal")
    plain = client.chat.completions.create(model=state["model"], messages=[{"role": "user", "content": "Some JSON, please."}],
                                           response_format={"type": "json_object"}, max_tokens=128, seed=3)
    value = json.loads(plain.choices[0].message.content)
    expect(isinstance(value, dict), f"json_object answered a {type(value).__name__}")
    return {"parsed": message.parsed.model_dump()}


def check_structured_stream() -> Dict[str, Any]:
    deltas: List[str] = []
    with client.chat.completions.stream(model=state["model"], messages=[{"role": "user", "content": "Describe a person as JSON."}],
                                        response_format=Person, max_tokens=256, seed=4) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
        final = stream.get_final_completion()
    message = final.choices[0].message
    expect_equal(final.choices[0].finish_reason, "stop", "finish_reason")
    expect(isinstance(message.parsed, Person), f"parsed is {type(message.parsed).__name__}, not Person")
    expect_equal("".join(deltas), message.content, "the content deltas joined")
    return {"deltas": len(deltas)}


def validate_call(call: Any) -> Dict[str, Any]:
    expect_equal(call.type, "function", "tool call type")
    expect(bool(call.id), "a tool call without an id")
    expect(call.function.name in TOOL_NAMES, f"a call of unknown function {call.function.name!r}")
    arguments = json.loads(call.function.arguments)
    if call.function.name == "get_current_weather":
        GetWeather.model_validate(arguments)
    else:
        expect(isinstance(arguments.get("city"), str) and len(arguments["city"]) <= 24 and set(arguments) == {"city"},
               f"get_postcode arguments {arguments}")
    return arguments


def tool_result(call: Any) -> str:
    if call.function.name == "get_current_weather":
        return json.dumps({"temperature": 59, "unit": "fahrenheit"})
    return "02138"


def check_tool_calls() -> Dict[str, Any]:
    r = client.chat.completions.create(model=state["model"], messages=WEATHER_QUESTION, tools=TOOLS, tool_choice="required",
                                       max_tokens=128, seed=1)
    choice = r.choices[0]
    expect_equal(choice.finish_reason, "tool_calls", "finish_reason")
    calls = choice.message.tool_calls or []
    expect(len(calls) >= 1, "tool_choice required answered without a call")
    expect(not choice.message.content, f"content next to the calls: {choice.message.content!r}")
    for call in calls:
        validate_call(call)
    expect_equal(len({c.id for c in calls}), len(calls), "distinct tool call ids")
    # The follow-up turn as the cookbook writes it: the SDK's message object, then one tool message per call.
    messages: List[Any] = [*WEATHER_QUESTION, choice.message]
    messages += [{"role": "tool", "tool_call_id": c.id, "content": tool_result(c)} for c in calls]
    follow = client.chat.completions.create(model=state["model"], messages=messages, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=8)
    answer = follow.choices[0]
    expect(answer.finish_reason in ("stop", "length"), f"follow-up finish_reason {answer.finish_reason!r}")
    expect(answer.message.tool_calls is None, "tool_choice none answered with a call")
    expect(isinstance(answer.message.content, str), "follow-up content is not text")
    # The model saw the calls and their results: the prompt the server renders holds them.
    as_dicts = [m if isinstance(m, dict) else m.model_dump(exclude_none=True) for m in messages]
    prompt = rendered_prompt(args.root, args.api_key, state["model"], as_dicts, TOOLS)
    expect_equal(follow.usage.prompt_tokens, prompt["count"], "follow-up prompt_tokens against /tokenize")
    for c in calls:
        expect(tool_result(c) in prompt["text"], f"the result of {c.function.name} is missing from the prompt")
        # The tools are listed before the question; the call must come back after it.
        after_question = prompt["text"].split(WEATHER_QUESTION[0]["content"], 1)[-1]
        expect(c.function.name in after_question, f"the call of {c.function.name} is missing from the prompt")
    return {"calls": [c.function.name for c in calls], "follow_up_prompt_tokens": follow.usage.prompt_tokens}


def check_tool_call_named_parse() -> Dict[str, Any]:
    r = client.chat.completions.parse(model=state["model"], messages=WEATHER_QUESTION, tools=TOOLS,
                                      tool_choice={"type": "function", "function": {"name": "get_current_weather"}}, max_tokens=128, seed=2)
    choice = r.choices[0]
    expect_equal(choice.finish_reason, "tool_calls", "finish_reason")
    calls = choice.message.tool_calls or []
    # A named tool_choice makes exactly one call (docs/structured-outputs.md).
    expect_equal([c.function.name for c in calls], ["get_current_weather"], "the calls of a named tool_choice")
    parsed = calls[0].function.parsed_arguments
    expect(isinstance(parsed, GetWeather), f"parsed_arguments is {type(parsed).__name__}, not GetWeather")
    return {"parsed_arguments": parsed.model_dump()}


def check_tool_call_stream() -> Dict[str, Any]:
    chunks: List[Any] = []
    with client.chat.completions.stream(model=state["model"], messages=WEATHER_QUESTION, tools=[WEATHER_TOOL], tool_choice="required",
                                        parallel_tool_calls=False, max_tokens=128, seed=5) as stream:
        for event in stream:
            if event.type == "chunk":
                chunks.append(event.chunk)
        final = stream.get_final_completion()
    deltas = [tc for c in chunks for ch in c.choices for tc in (ch.delta.tool_calls or [])]
    expect(len(deltas) >= 1, "no tool_calls deltas in the stream")
    head = deltas[0]
    # As OpenAI streams a call: the first delta carries id, type and name; the rest add arguments.
    expect(bool(head.id) and head.type == "function" and head.function.name == "get_current_weather", f"the first tool delta {head}")
    expect(all(d.index == 0 for d in deltas), "parallel_tool_calls false streamed more than one call")
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    GetWeather.model_validate_json(arguments)
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    expect_equal(finishes, ["tool_calls"], "the stream's finish_reason")
    calls = final.choices[0].message.tool_calls or []
    expect_equal(len(calls), 1, "calls in the accumulated completion")
    expect(isinstance(calls[0].function.parsed_arguments, GetWeather), "the accumulated call's arguments did not parse into GetWeather")
    expect_equal(calls[0].id, head.id, "the accumulated call's id")
    return {"chunks": len(chunks)}


def check_completions_logprobs() -> Dict[str, Any]:
    r = client.completions.create(model=state["model"], prompt="The capital of France is", max_tokens=6, logprobs=3, temperature=0, seed=7)
    expect(r.id.startswith("cmpl-"), f"id {r.id!r} does not start with cmpl-")
    expect_equal(r.object, "text_completion", "object")
    choice = r.choices[0]
    lp = choice.logprobs
    n = r.usage.completion_tokens
    expect(0 < n <= 6, f"completion_tokens {n}")
    for field in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
        expect_equal(len(getattr(lp, field)), n, f"len(logprobs.{field})")
    for i in range(n):
        top = lp.top_logprobs[i]
        expect(1 <= len(top) <= 4, f"top_logprobs[{i}] has {len(top)} entries for logprobs 3")
        expect(lp.tokens[i] in top, f"the chosen token {lp.tokens[i]!r} is missing from top_logprobs[{i}]")
        expect(abs(lp.token_logprobs[i] - max(top.values())) < 1e-4, f"greedy token {i} is not the most likely one")
    # Offsets count characters from the start of the answer, as Python indexes the text.
    expect_equal(lp.text_offset[0], 0, "text_offset[0]")
    for i in range(1, n):
        expect_equal(lp.text_offset[i] - lp.text_offset[i - 1], len(lp.tokens[i - 1]), f"text_offset step {i}")
    # Scoring a prompt (lm-evaluation-harness): echo, no new tokens, a logprob per prompt token.
    prompt = "The quick brown fox jumps over the lazy dog"
    scored = client.completions.create(model=state["model"], prompt=prompt, max_tokens=0, echo=True, logprobs=1)
    slp = scored.choices[0].logprobs
    expect_equal(scored.choices[0].text, prompt, "the echoed text")
    expect_equal("".join(slp.tokens), prompt, "the echoed tokens joined")
    expect_equal(scored.usage.completion_tokens, 0, "completion_tokens of a scoring request")
    expect_equal(len(slp.tokens), scored.usage.prompt_tokens, "echoed tokens against prompt_tokens")
    expect(slp.token_logprobs[0] is None, "the first prompt token has a logprob (nothing predicts it)")
    expect(all(x is not None and x <= 0 for x in slp.token_logprobs[1:]), "a prompt token without a logprob, or one above 0")
    return {"tokens": lp.tokens, "scored_tokens": len(slp.tokens)}


def expect_api_error(kind: type, status: int, code: Optional[str], param: Optional[str], call: Any) -> openai.APIStatusError:
    try:
        call()
    except kind as err:
        expect_equal(err.status_code, status, f"{kind.__name__}.status_code")
        expect_equal(err.code, code, f"{kind.__name__}.code")
        expect_equal(err.param, param, f"{kind.__name__}.param")
        expect_equal(err.type, "invalid_request_error", f"{kind.__name__}.type")
        expect(isinstance(err.body, dict) and bool(err.body.get("message")), f"the error body has no message: {err.body}")
        expect(bool(err.request_id and REQUEST_ID.match(err.request_id)), f"the error's request_id {err.request_id!r}")
        return err
    raise CheckFailed(f"expected {kind.__name__} ({status}, code {code}), the call succeeded")


def check_errors() -> Dict[str, Any]:
    model = state["model"]
    create = client.chat.completions.create
    seen = []
    seen.append(expect_api_error(openai.BadRequestError, 400, "decimal_above_max_value", "temperature",
                                 lambda: create(model=model, messages=USER, temperature=5, max_tokens=4)))
    # A stream that cannot start is refused before any event: the same error, raised by create().
    seen.append(expect_api_error(openai.BadRequestError, 400, "decimal_above_max_value", "temperature",
                                 lambda: create(model=model, messages=USER, temperature=5, max_tokens=4, stream=True)))
    seen.append(expect_api_error(openai.BadRequestError, 400, "context_length_exceeded", "messages",
                                 lambda: create(model=model, messages=USER, max_tokens=state["max_model_len"] + 1)))
    seen.append(expect_api_error(openai.NotFoundError, 404, "model_not_found", "model",
                                 lambda: create(model="no-such-model", messages=USER, max_tokens=4)))
    seen.append(expect_api_error(openai.BadRequestError, 400, "unsupported_schema", "response_format",
                                 lambda: create(model=model, messages=USER, max_tokens=4, response_format={
                                     "type": "json_schema", "json_schema": {"name": "nope", "schema": {"not": {"type": "string"}}}})))
    expect_api_error(openai.NotFoundError, 404, "model_not_found", "model", lambda: client.models.retrieve("no-such-model"))
    return {"codes": [e.code for e in seen]}


def check_request_id() -> Dict[str, Any]:
    raw = client.chat.completions.with_raw_response.create(model=state["model"], messages=USER, max_tokens=2)
    header = raw.headers.get("x-request-id")
    expect(bool(header and REQUEST_ID.match(header)), f"x-request-id {header!r}")
    expect_equal(raw.request_id, header, "the raw response's request_id")
    expect_equal(raw.parse()._request_id, header, "the parsed completion's _request_id")
    mine = f"compat-{uuid.uuid4().hex}"
    echoed = client.chat.completions.with_raw_response.create(model=state["model"], messages=USER, max_tokens=2, extra_headers={"X-Request-Id": mine})
    expect_equal(echoed.headers.get("x-request-id"), mine, "the client's own x-request-id echoed")
    with client.chat.completions.with_streaming_response.create(model=state["model"], messages=USER, max_tokens=4, stream=True) as res:
        stream_id = res.headers.get("x-request-id")
        expect(bool(stream_id and REQUEST_ID.match(stream_id)), f"a stream's x-request-id {stream_id!r}")
        chunks = list(res.parse())
    expect(any(c.choices and c.choices[0].finish_reason for c in chunks), "the stream read through with_streaming_response never finished")
    return {"request_id": header, "client_request_id": mine, "stream_request_id": stream_id}


async def one_stream(aclient: openai.AsyncOpenAI, i: int, max_tokens: int) -> Dict[str, Any]:
    stream = await aclient.chat.completions.create(
        model=state["model"], messages=[{"role": "user", "content": f"Count to {i + 3}, please."}], max_tokens=max_tokens,
        temperature=0.7, seed=100 + i, stream=True, stream_options={"include_usage": True})
    ids, pieces, finishes, usage, first, last = set(), [], [], None, None, None
    async for chunk in stream:
        ids.add(chunk.id)
        now = time.monotonic()
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
                first = first or now
            if c.finish_reason:
                finishes.append(c.finish_reason)
        if chunk.usage is not None:
            usage = chunk.usage
        last = now
    return {"ids": ids, "text": "".join(pieces), "finishes": finishes, "usage": usage, "first": first, "last": last}


async def async_streams(count: int, max_tokens: int) -> List[Dict[str, Any]]:
    async with openai.AsyncOpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120) as aclient:
        return await asyncio.gather(*(one_stream(aclient, i, max_tokens) for i in range(count)))


def check_async_streams() -> Dict[str, Any]:
    count, max_tokens = 8, 24
    results = asyncio.run(async_streams(count, max_tokens))
    all_ids = set()
    for i, r in enumerate(results):
        expect_equal(len(r["ids"]), 1, f"stream {i}: ids of its chunks")
        all_ids |= r["ids"]
        expect(len(r["finishes"]) == 1 and r["finishes"][0] in ("stop", "length"), f"stream {i}: finish reasons {r['finishes']}")
        expect(r["usage"] is not None, f"stream {i}: no usage chunk")
        usage_ok(r["usage"], max_tokens)
        if r["finishes"][0] == "length":
            expect_equal(r["usage"].completion_tokens, max_tokens, f"stream {i}: completion_tokens when cut by max_tokens")
        expect(len(r["text"]) > 0 and r["first"] is not None, f"stream {i}: no content")
    expect_equal(len(all_ids), count, "distinct stream ids")
    # The streams were answered side by side, not one after another: count those in flight at
    # the moment the first one finished.
    first_done = min(r["last"] for r in results)
    in_flight = sum(1 for r in results if r["first"] <= first_done)
    expect(in_flight >= 2, f"only {in_flight} stream(s) had started answering when the first one ended")
    return {"streams": count, "in_flight_at_first_finish": in_flight}


def check_responses() -> Dict[str, Any]:
    """The Responses API: the same greedy turn as chat, streamed as typed events, chained by id."""
    question = USER[0]["content"]
    r = client.responses.create(model=state["model"], input=question, temperature=0, max_output_tokens=16)
    expect_equal(r.object, "response", "object")
    chat = client.chat.completions.create(model=state["model"], messages=USER, temperature=0, max_tokens=16)
    expect_equal(r.output_text, chat.choices[0].message.content or "", "output_text against chat's greedy answer")
    expect_equal(r.usage.input_tokens, chat.usage.prompt_tokens, "input_tokens against chat's prompt_tokens")
    expect_equal(r.status, "incomplete" if chat.choices[0].finish_reason == "length" else "completed", "status")
    deltas: List[str] = []
    types: List[str] = []
    for event in client.responses.create(model=state["model"], input=question, temperature=0, max_output_tokens=16, stream=True):
        types.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
    expect_equal(types[0], "response.created", "first event")
    expect(types[-1] in ("response.completed", "response.incomplete"), f"last event {types[-1]!r}")
    expect_equal("".join(deltas), r.output_text, "the streamed deltas joined")
    follow = client.responses.create(model=state["model"], previous_response_id=r.id, input="And then?", temperature=0, max_output_tokens=8)
    expect(follow.usage.input_tokens > r.usage.input_tokens + r.usage.output_tokens - 1, "the chained turn's prompt does not hold the first turn")
    expect_equal(client.responses.retrieve(follow.id).output_text, follow.output_text, "the stored response")
    return {"deltas": len(deltas), "chained_input_tokens": follow.usage.input_tokens}


def check_responses_parse() -> Dict[str, Any]:
    """responses.parse with a pydantic text_format, its stream helper, and a forced function call."""
    r = client.responses.parse(model=state["model"], input="Describe a person as JSON.", text_format=Person, max_output_tokens=256)
    expect(isinstance(r.output_parsed, Person), f"output_parsed is {type(r.output_parsed).__name__}, not Person")
    with client.responses.stream(model=state["model"], input="Describe a person as JSON.", text_format=Person, max_output_tokens=256) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    expect(isinstance(final.output_parsed, Person), "the streamed response did not parse")
    tool = {"type": "function", "name": "get_current_weather", "strict": True, "parameters": WEATHER_TOOL["function"]["parameters"]}
    t = client.responses.create(model=state["model"], input=WEATHER_QUESTION[0]["content"], tools=[tool], tool_choice="required", max_output_tokens=128)
    calls = [o for o in t.output if o.type == "function_call"]
    expect(len(calls) >= 1, "tool_choice required answered without a function_call")
    for call in calls:
        expect_equal(call.name, "get_current_weather", "function_call name")
        GetWeather.model_validate_json(call.arguments)
    return {"parsed": r.output_parsed.model_dump(), "calls": len(calls)}


def check_vllm_extras() -> Dict[str, Any]:
    """vLLM's own fields through extra_body, and its own answer fields as the client exposes them."""
    pattern = r"\d{3}-[a-z]{2,4}"
    r = client.chat.completions.create(
        model=state["model"], messages=USER, max_tokens=20, temperature=1, seed=3, extra_body={"guided_regex": pattern, "return_token_ids": True}
    )
    choice = r.choices[0]
    expect(re.fullmatch(pattern, choice.message.content or "") is not None, f"a guided_regex answer {choice.message.content!r}")
    expect_equal(len(getattr(r, "prompt_token_ids", None) or []), r.usage.prompt_tokens, "len(prompt_token_ids)")
    expect_equal(len(getattr(choice, "token_ids", None) or []), r.usage.completion_tokens, "len(token_ids)")
    expect(getattr(choice, "stop_reason", "absent") is None, "stop_reason of an answer ended by the end token")
    grammar = 'root ::= answer ", " word\nanswer ::= "yes" | "no"\nword ::= [a-z]{2,6}'
    g = client.completions.create(model=state["model"], prompt="Answer:", max_tokens=20, seed=4, extra_body={"guided_grammar": grammar, "prompt_logprobs": 2})
    text = g.choices[0].text
    expect(re.fullmatch(r"(yes|no), [a-z]{2,6}", text) is not None, f"a guided_grammar answer {text!r}")
    listed = getattr(g.choices[0], "prompt_logprobs", None)
    expect(isinstance(listed, list) and len(listed) == g.usage.prompt_tokens, "one prompt_logprobs entry per prompt token")
    expect(listed[0] is None, "the first prompt token has prompt logprobs")
    for k, entry in enumerate(listed[1:], 1):
        expect(1 <= len(entry) <= 3, f"prompt_logprobs[{k}] has {len(entry)} entries for 2 alternatives")
        for v in entry.values():
            expect(v["logprob"] <= 0 and v["rank"] >= 1 and isinstance(v["decoded_token"], str), f"prompt_logprobs[{k}] entry {v}")
    return {"regex": choice.message.content, "grammar": text}


def check_embeddings() -> Dict[str, Any]:
    """client.embeddings.create: one normalized vector per input, float and base64 (decoded by the client) alike."""
    texts = ["The sea is deep.", "Mountains are tall."]
    r = client.embeddings.create(model=state["model"], input=texts, encoding_format="float")
    expect_equal([d.index for d in r.data], [0, 1], "embedding indexes")
    size = len(r.data[0].embedding)
    expect(size > 0 and all(len(d.embedding) == size for d in r.data), "every vector has the model's size")
    for d in r.data:
        expect(abs(sum(x * x for x in d.embedding) - 1.0) < 1e-4, "a normalized vector")
    expect(r.data[0].embedding != r.data[1].embedding, "different texts give different vectors")
    expect(r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens, f"usage {r.usage}")
    b = client.embeddings.create(model=state["model"], input=texts[0], encoding_format="base64", dimensions=8)
    vec = b.data[0].embedding
    if isinstance(vec, str):  # clients that leave base64 as it came
        import base64, struct
        raw = base64.b64decode(vec)
        vec = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    expect_equal(len(vec), 8, "dimensions=8")
    return {"size": size, "usage": r.usage.prompt_tokens}


if __name__ == "__main__":
    for name, fn in [
        ("models", check_models),
        ("chat", check_chat),
        ("chat_stream", check_chat_stream),
        ("chat_logprobs", check_chat_logprobs),
        ("structured_parse", check_structured_parse),
        ("structured_stream", check_structured_stream),
        ("tool_calls", check_tool_calls),
        ("tool_call_named_parse", check_tool_call_named_parse),
        ("tool_call_stream", check_tool_call_stream),
        ("completions_logprobs", check_completions_logprobs),
        ("errors", check_errors),
        ("request_id", check_request_id),
        ("async_streams", check_async_streams),
        ("responses", check_responses),
        ("responses_parse", check_responses_parse),
        ("vllm_extras", check_vllm_extras),
        ("embeddings", check_embeddings),
    ]:
        runner.check(name, fn)
    runner.finish()
