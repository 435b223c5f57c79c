"""Drives a running grpst server with LangChain's ChatOpenAI (langchain-openai), as its users do.

    python client/python/compat_langchain.py 127.0.0.1:9997 [--api_key KEY] [--model NAME]

LangChain turns the server's answers into its own messages (AIMessage, usage_metadata,
response_metadata, tool_calls parsed from the arguments) and builds its own requests (tool_choice
by name, parallel_tool_calls, max_completion_tokens, stream_options), so it reaches fields that
the bare openai client leaves alone. Every check asserts structure and invariants, never what the
model says, except where the server's constrained decoding guarantees the shape (forced tool
calls, structured outputs). One check drives ChatAnthropic (langchain-anthropic) on the server's
Messages API instead, for how LangChain reads its context overflows. Exits 0 when every check
passed, 1 at the first failure; stdout is one line of JSON (see compat_common.py).
"""

import asyncio
import importlib.metadata
import sys
from typing import Annotated, Any, Dict, List, Literal

import anthropic
import openai
from langchain_anthropic import ChatAnthropic
from langchain_core.exceptions import ContextOverflowError, ModelAuthenticationError, ModelInvalidRequestError, ModelNotFoundError
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage, convert_to_openai_messages
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from compat_common import CheckFailed, Runner, expect, expect_equal, parse_args, rendered_prompt, served_model

args = parse_args(__doc__.splitlines()[0])
runner = Runner("langchain-openai", importlib.metadata.version("langchain-openai"), args.root)
# Facts one check establishes and a later one builds on.
state: Dict[str, Any] = {}

QUESTION = "Tell me a short story about a robot."
MAX_TOKENS = 16


def make_llm(**overrides: Any) -> ChatOpenAI:
    """ChatOpenAI as LangChain's docs configure it for an OpenAI-compatible server; greedy unless overridden."""
    settings: Dict[str, Any] = dict(
        model=state["model"], base_url=args.base_url, api_key=args.api_key, max_tokens=MAX_TOKENS, temperature=0, seed=7,
        max_retries=0, timeout=120,
    )
    settings.update(overrides)
    return ChatOpenAI(**settings)


class GetPostcode(BaseModel):
    """Get the postcode of a city."""

    city: str = Field(max_length=24, description="The city, e.g. Boston")


# @tool builds the tool's JSON schema from this signature and its docstring's Args.
@tool(parse_docstring=True)
def get_weather(city: Annotated[str, Field(max_length=24)], unit: Literal["celsius", "fahrenheit"] = "fahrenheit") -> str:
    """Get the current weather in a city.

    Args:
        city: The city, e.g. Boston.
        unit: The temperature unit.
    """
    return f"59 degrees {unit} in {city}"


class Person(BaseModel):
    """A person."""

    name: str = Field(max_length=20)
    age: int = Field(ge=0, le=120)
    role: Literal["admin", "user", "guest"]
    hobbies: List[Annotated[str, Field(max_length=12)]] = Field(max_length=2)


def usage_ok(message: AIMessage, max_tokens: int) -> Dict[str, int]:
    usage = message.usage_metadata
    expect(usage is not None, f"no usage_metadata on {message!r}")
    expect_equal(usage["total_tokens"], usage["input_tokens"] + usage["output_tokens"], "usage_metadata total_tokens")
    expect(usage["input_tokens"] > 0, f"input_tokens {usage['input_tokens']}")
    expect(0 < usage["output_tokens"] <= max_tokens, f"output_tokens {usage['output_tokens']} not in 1..{max_tokens}")
    if message.response_metadata.get("finish_reason") == "length":
        expect_equal(usage["output_tokens"], max_tokens, "output_tokens of an answer cut by max_tokens")
    return {k: usage[k] for k in ("input_tokens", "output_tokens", "total_tokens")}


def metadata_ok(message: AIMessage, finishes: tuple = ("stop", "length")) -> None:
    meta = message.response_metadata
    expect(meta.get("finish_reason") in finishes, f"finish_reason {meta.get('finish_reason')!r} not in {finishes}")
    expect_equal(meta.get("model_name"), state["model"], "response_metadata model_name")


def check_setup() -> Dict[str, Any]:
    return served_model(args.base_url, args.api_key, args.model, state)


def check_invoke() -> Dict[str, Any]:
    llm = make_llm()
    m = llm.invoke(QUESTION)
    expect(isinstance(m, AIMessage), f"invoke returned {type(m).__name__}")
    expect(isinstance(m.content, str) and len(m.content) > 0, f"empty content: {m!r}")
    expect_equal(m.tool_calls, [], "tool_calls of an answer to a request without tools")
    metadata_ok(m)
    usage = usage_ok(m, MAX_TOKENS)
    expect(str(m.response_metadata.get("id", "")).startswith("chatcmpl-"), f"response_metadata id {m.response_metadata.get('id')!r}")
    again = llm.invoke(QUESTION)
    expect_equal(again.content, m.content, "a second greedy answer")
    # The server reuses the first request's prompt: LangChain reports it as cache_read.
    cache_read = (again.usage_metadata.get("input_token_details") or {}).get("cache_read")
    expect(isinstance(cache_read, int) and cache_read > 0, f"the repeated prompt's input_token_details {again.usage_metadata}")
    state["answer"] = m
    return {"finish_reason": m.response_metadata["finish_reason"], "usage": usage, "repeat_cache_read": cache_read}


def check_stream() -> Dict[str, Any]:
    reference: AIMessage = state["answer"]
    # stream_usage: ChatOpenAI asks for the usage chunk by itself only from api.openai.com.
    chunks = list(make_llm(stream_usage=True).stream(QUESTION))
    expect(len(chunks) >= 3, f"only {len(chunks)} chunks")
    expect(all(isinstance(c, AIMessageChunk) for c in chunks), "a chunk that is not an AIMessageChunk")
    whole = chunks[0]
    for c in chunks[1:]:
        whole = whole + c
    expect_equal(whole.content, reference.content, "the streamed chunks joined (greedy)")
    metadata_ok(whole)
    expect_equal(whole.response_metadata["finish_reason"], reference.response_metadata["finish_reason"], "the stream's finish_reason")
    expect_equal(usage_ok(whole, MAX_TOKENS), usage_ok(reference, MAX_TOKENS), "the stream's usage_metadata")
    expect_equal(sum(1 for c in chunks if c.usage_metadata), 1, "chunks with usage_metadata")
    return {"chunks": len(chunks)}


def check_batch() -> Dict[str, Any]:
    questions = [QUESTION, "Count to five, please.", "Name a colour.", "What is two plus two?"]
    llm = make_llm()
    answers = llm.batch(questions, config={"max_concurrency": 4})
    expect_equal(len(answers), len(questions), "batch answers")
    for i, a in enumerate(answers):
        expect(isinstance(a.content, str) and len(a.content) > 0, f"batch answer {i} is empty")
        metadata_ok(a)
        usage_ok(a, MAX_TOKENS)
    # Answered side by side with other requests, a greedy answer is the one it is alone.
    expect_equal(answers[0].content, state["answer"].content, "the batch's first answer (greedy)")
    ids = {a.response_metadata.get("id") for a in answers}
    expect_equal(len(ids), len(questions), "distinct response ids")
    return {"answers": len(answers)}


def call_ok(call: Dict[str, Any]) -> None:
    expect(isinstance(call.get("id"), str) and len(call["id"]) > 0, f"a tool call without an id: {call}")
    expect_equal(call.get("type"), "tool_call", "tool call type")
    if call["name"] == "get_weather":
        # The tool's own argument schema, as LangChain validates it when the tool runs.
        get_weather.args_schema.model_validate(call["args"])
    else:
        expect_equal(call["name"], "GetPostcode", "tool call name")
        GetPostcode.model_validate(call["args"])


def check_tool_calls() -> Dict[str, Any]:
    tools = [get_weather, GetPostcode]
    question = "What's the weather like in Boston today?"
    # tool_choice by name: LangChain sends {"type": "function", "function": {"name": ...}}.
    forced = make_llm(max_tokens=96).bind_tools(tools, tool_choice="get_weather")
    m = forced.invoke(question)
    expect(len(m.tool_calls) >= 1, f"a forced tool call answered without tool_calls: {m!r}")
    expect_equal(m.invalid_tool_calls, [], "invalid_tool_calls")
    for call in m.tool_calls:
        expect_equal(call["name"], "get_weather", "the forced tool's name")
        call_ok(call)
    metadata_ok(m, ("tool_calls", "stop"))
    # "any" (LangChain's word for "required") and a stream: the argument fragments, joined by
    # LangChain, parse into the same kind of calls.
    any_tool = make_llm(max_tokens=96).bind_tools(tools, tool_choice="any")
    streamed = None
    for chunk in any_tool.stream("What's the postcode of Boston and the weather there?"):
        streamed = chunk if streamed is None else streamed + chunk
    expect(streamed is not None and len(streamed.tool_calls) >= 1, f"tool_choice any streamed no tool_calls: {streamed!r}")
    expect_equal(streamed.invalid_tool_calls, [], "streamed invalid_tool_calls")
    for call in streamed.tool_calls:
        call_ok(call)
    state.update(tool_question=question, tool_message=m)
    return {"calls": [c["args"] for c in m.tool_calls], "streamed": [c["name"] for c in streamed.tool_calls]}


def check_tool_round_trip() -> Dict[str, Any]:
    ai: AIMessage = state["tool_message"]
    # Running the tool on LangChain's ToolCall gives the ToolMessage that answers it.
    results = [get_weather.invoke(call) for call in ai.tool_calls]
    for r, call in zip(results, ai.tool_calls):
        expect(isinstance(r, ToolMessage), f"the tool returned {type(r).__name__}")
        expect_equal(r.tool_call_id, call["id"], "ToolMessage.tool_call_id")
    messages = [HumanMessage(state["tool_question"]), ai, *results]
    final = make_llm(max_tokens=24).bind_tools([get_weather, GetPostcode]).invoke(messages)
    expect(isinstance(final.content, str), f"the answer after the tool results is not text: {final!r}")
    metadata_ok(final, ("stop", "length", "tool_calls"))
    # The tool results reached the prompt: the server's rendering of the conversation, as
    # LangChain's public converters serialize it, is the prompt LangChain's request was billed for.
    tools = [convert_to_openai_tool(t) for t in (get_weather, GetPostcode)]
    prompt = rendered_prompt(args.root, args.api_key, state["model"], convert_to_openai_messages(messages), tools)
    for r in results:
        expect(r.content in prompt["text"], f"the tool result {r.content!r} is missing from the prompt")
    expect_equal(final.usage_metadata["input_tokens"], prompt["count"], "input_tokens against /tokenize")
    return {"results": [r.content for r in results], "input_tokens": prompt["count"]}


def check_structured_json_schema() -> Dict[str, Any]:
    structured = make_llm(max_tokens=256).with_structured_output(Person, method="json_schema")
    p = structured.invoke("Describe a person as JSON.")
    expect(isinstance(p, Person), f"with_structured_output(json_schema) returned {type(p).__name__}")
    raw = make_llm(max_tokens=256, seed=8).with_structured_output(Person, method="json_schema", include_raw=True).invoke("Describe a person.")
    expect(raw["parsing_error"] is None, f"parsing_error {raw['parsing_error']!r}")
    expect(isinstance(raw["parsed"], Person), f"parsed is {type(raw['parsed']).__name__}")
    expect_equal(Person.model_validate_json(raw["raw"].content), raw["parsed"], "the raw content validated again")
    expect_equal(raw["raw"].response_metadata.get("finish_reason"), "stop", "finish_reason of a structured answer")
    # Streamed, LangChain parses the JSON once the answer is whole.
    parts = list(structured.stream("Describe a person as JSON."))
    expect(len(parts) >= 1 and isinstance(parts[-1], Person), f"the stream's last object: {parts[-1:]!r}")
    expect_equal(parts[-1], p, "the streamed object (greedy)")
    return {"person": p.model_dump()}


def check_structured_function_calling() -> Dict[str, Any]:
    structured = make_llm(max_tokens=256).with_structured_output(Person, method="function_calling")
    p = structured.invoke("Describe a person.")
    expect(isinstance(p, Person), f"with_structured_output(function_calling) returned {type(p).__name__}")
    # LangChain forces the schema's tool by name with parallel_tool_calls false: one call, no text.
    raw = make_llm(max_tokens=256).with_structured_output(Person, method="function_calling", include_raw=True).invoke("Describe a person.")
    expect(raw["parsing_error"] is None, f"parsing_error {raw['parsing_error']!r}")
    expect_equal([c["name"] for c in raw["raw"].tool_calls], ["Person"], "the tool calls of a structured answer")
    expect_equal(raw["parsed"], p, "the parsed object (greedy)")
    # Streamed, LangChain parses the arguments as they grow and yields each object that validates;
    # the last one is whole.
    parts = list(structured.stream("Describe a person."))
    expect(len(parts) >= 1 and isinstance(parts[-1], Person), f"the stream's last object: {parts[-1:]!r}")
    expect_equal(parts[-1], p, "the streamed object (greedy)")
    return {"person": p.model_dump(), "streamed_objects": len(parts)}


def check_structured_json_mode() -> Dict[str, Any]:
    value = make_llm(max_tokens=128, seed=3).with_structured_output(None, method="json_mode").invoke("Some JSON, please.")
    expect(isinstance(value, dict), f"json_mode parsed a {type(value).__name__}")
    return {"keys": len(value)}


def logprobs_ok(content: List[Dict[str, Any]], output_tokens: int, what: str) -> None:
    expect_equal(len(content), output_tokens, f"{what}: logprobs entries (one per generated token)")
    for entry in content:
        expect(entry["logprob"] <= 0, f"{what}: logprob {entry['logprob']} > 0")
        expect_equal(len(entry["top_logprobs"]), 2, f"{what}: top_logprobs per token")
        best = max(t["logprob"] for t in entry["top_logprobs"])
        expect(abs(entry["logprob"] - best) < 1e-4, f"{what}: greedy chose {entry['token']!r} ({entry['logprob']}) over a token at {best}")


def check_logprobs() -> Dict[str, Any]:
    llm = make_llm(logprobs=True, top_logprobs=2, stream_usage=True)
    m = llm.invoke(QUESTION)
    lp = m.response_metadata.get("logprobs")
    expect(isinstance(lp, dict) and isinstance(lp.get("content"), list), f"response_metadata logprobs {lp!r}")
    logprobs_ok(lp["content"], m.usage_metadata["output_tokens"], "invoke")
    whole = None
    for chunk in llm.stream(QUESTION):
        whole = chunk if whole is None else whole + chunk
    streamed = whole.response_metadata.get("logprobs")
    expect(isinstance(streamed, dict), f"a stream's response_metadata logprobs {streamed!r}")
    logprobs_ok(streamed["content"], whole.usage_metadata["output_tokens"], "stream")
    expect_equal([e["token"] for e in streamed["content"]], [e["token"] for e in lp["content"]], "the streamed logprob tokens")
    return {"tokens": len(lp["content"])}


def check_sampling() -> Dict[str, Any]:
    reference: AIMessage = state["answer"]
    short = make_llm(max_tokens=4).invoke(QUESTION)
    expect(0 < short.usage_metadata["output_tokens"] <= 4, f"max_tokens=4 gave {short.usage_metadata['output_tokens']} tokens")
    expect(reference.content.startswith(short.content), f"a greedy answer cut by max_tokens {short.content!r} is not a prefix of {reference.content!r}")
    # stop, as invoke's argument and as the model's setting: the answer ends before the stop text.
    # The stop string is a piece of the greedy answer that first appears past its start, so the
    # cut answer is a non-empty prefix of it.
    text = reference.content
    stop = next((text[k:k + 2] for k in range(len(text) // 2, len(text) - 1) if text.index(text[k:k + 2]) > 0), "")
    expect(len(stop) > 0, f"no stop string to take from the reference answer {text!r}")
    cut = text[: text.index(stop)]
    stopped = make_llm().invoke(QUESTION, stop=[stop])
    expect_equal(stopped.content, cut, "the answer with a stop string")
    expect_equal(stopped.response_metadata.get("finish_reason"), "stop", "finish_reason at a stop string")
    expect_equal(make_llm(stop=[stop]).invoke(QUESTION).content, cut, "the answer with ChatOpenAI(stop=...)")
    # seed with temperature 1: one seed gives one answer; bound parameters reach the request too.
    sampled = make_llm(temperature=1, seed=11, max_tokens=12)
    first = sampled.invoke(QUESTION).content
    expect_equal(sampled.invoke(QUESTION).content, first, "two answers with one seed")
    others = {make_llm(temperature=1, max_tokens=12).bind(seed=s).invoke(QUESTION).content for s in (12, 13, 14)}
    expect(len(others | {first}) > 1, f"four seeds at temperature 1 gave one answer {first!r}")
    expect_equal(make_llm(temperature=1).bind(temperature=0).invoke(QUESTION).content, text, "temperature=0 bound over the model's 1")
    # extra_body, as Qwen's docs have LangChain users switch thinking: the prompt changes with it.
    sizes = [make_llm(max_tokens=1, extra_body={"chat_template_kwargs": {"enable_thinking": on}}).invoke(QUESTION).usage_metadata["input_tokens"]
             for on in (True, False)]
    expect(sizes[0] != sizes[1], f"enable_thinking true and false through extra_body made prompts of one size {sizes}")
    return {"stop": stop, "short": short.content, "thinking_prompt_tokens": sizes}


async def async_calls(count: int) -> Dict[str, Any]:
    # One event loop for all of them: ChatOpenAI keeps its async HTTP client across calls.
    llm = make_llm(temperature=0.7, stream_usage=True, max_tokens=24)

    async def one(i: int) -> AIMessageChunk:
        whole = None
        async for chunk in llm.astream(f"Count to {i + 3}, please."):
            whole = chunk if whole is None else whole + chunk
        return whole

    streamed = await asyncio.gather(*(one(i) for i in range(count)))
    batched = await make_llm().abatch([QUESTION, "Name a colour."])
    return {"streamed": streamed, "batched": batched}


def check_async() -> Dict[str, Any]:
    got = asyncio.run(async_calls(4))
    for i, m in enumerate(got["streamed"]):
        expect(isinstance(m, AIMessageChunk) and len(m.content) > 0, f"astream {i}: no content")
        metadata_ok(m)
        usage_ok(m, 24)
    expect_equal(len({m.id for m in got["streamed"]}), len(got["streamed"]), "distinct message ids of the streams")
    expect_equal(got["batched"][0].content, state["answer"].content, "abatch's first answer (greedy)")
    return {"streams": len(got["streamed"])}


def check_responses_api() -> Dict[str, Any]:
    """ChatOpenAI(use_responses_api=True): the same turn, stream and tool round trip on /v1/responses."""
    # The Responses API has no seed; greedy needs none.
    llm = make_llm(use_responses_api=True, seed=None)
    m = llm.invoke(QUESTION)
    expect_equal(m.text, state["answer"].content, "the Responses API's greedy answer against chat's")
    expect_equal(m.response_metadata.get("status"), "incomplete" if state["answer"].response_metadata["finish_reason"] == "length" else "completed", "status")
    expect_equal(usage_ok(m, MAX_TOKENS), usage_ok(state["answer"], MAX_TOKENS), "usage_metadata against chat's")
    whole = None
    for chunk in llm.stream(QUESTION):
        whole = chunk if whole is None else whole + chunk
    expect_equal(whole.text, m.text, "the streamed Responses API answer")
    tools = make_llm(use_responses_api=True, seed=None, max_tokens=96).bind_tools([get_weather], tool_choice="get_weather")
    ai = tools.invoke(state["tool_question"])
    expect(len(ai.tool_calls) >= 1, f"a forced tool call on the Responses API answered without tool_calls: {ai!r}")
    for call in ai.tool_calls:
        call_ok(call)
    final = make_llm(use_responses_api=True, seed=None).bind_tools([get_weather]).invoke(
        [HumanMessage(state["tool_question"]), ai, *(get_weather.invoke(c) for c in ai.tool_calls)])
    expect(isinstance(final.text, str) and final.usage_metadata["input_tokens"] > ai.usage_metadata["input_tokens"], f"the turn after the tool results: {final!r}")
    return {"calls": len(ai.tool_calls), "follow_up_input_tokens": final.usage_metadata["input_tokens"]}


def expect_model_error(kinds: tuple, status: int, code: str, call: Any) -> Exception:
    try:
        call()
    except openai.APIStatusError as err:
        for kind in kinds:
            expect(isinstance(err, kind), f"{type(err).__name__} ({err.status_code}) is not a {kind.__name__}")
        expect_equal(err.status_code, status, f"{type(err).__name__}.status_code")
        expect_equal(err.code, code, f"{type(err).__name__}.code")
        return err
    raise CheckFailed(f"expected {kinds[0].__name__} ({status}, code {code}), the call succeeded")


def check_errors() -> Dict[str, Any]:
    seen = [
        # LangChain re-raises the openai exceptions as subclasses that are also its own model errors.
        expect_model_error((openai.BadRequestError, ModelInvalidRequestError), 400, "decimal_above_max_value",
                           lambda: make_llm(temperature=5).invoke(QUESTION)),
        expect_model_error((openai.BadRequestError, ModelInvalidRequestError), 400, "decimal_above_max_value",
                           lambda: list(make_llm(temperature=5).stream(QUESTION))),
        # A conversation grown past the context, and an answer budget that leaves the prompt no
        # room: LangChain tells them from other 400s (ContextOverflowError, which its agents'
        # summarization catches to shorten the conversation) by the error's message.
        expect_model_error((openai.BadRequestError, ContextOverflowError), 400, "context_length_exceeded",
                           lambda: make_llm().invoke([HumanMessage("word " * state["max_model_len"])])),
        expect_model_error((openai.BadRequestError, ContextOverflowError), 400, "context_length_exceeded",
                           lambda: list(make_llm(max_tokens=state["max_model_len"]).stream(QUESTION))),
        expect_model_error((openai.NotFoundError, ModelNotFoundError), 404, "model_not_found",
                           lambda: make_llm(model="no-such-model").invoke(QUESTION)),
    ]
    if args.key_given:
        seen.append(expect_model_error((openai.AuthenticationError, ModelAuthenticationError), 401, "invalid_api_key",
                                       lambda: make_llm(api_key="wrong-key").invoke(QUESTION)))
    facts: Dict[str, Any] = {"codes": [e.code for e in seen], "types": [type(e).__name__ for e in seen]}
    if not args.key_given:
        # A server without api_key takes any key.
        print("errors: skipped the 401 for a wrong key (no --api_key given; pass the server's key to check it)", file=sys.stderr, flush=True)
        facts["skipped"] = "the 401 for a wrong key (no --api_key given)"
    return facts


def check_chat_anthropic() -> Dict[str, Any]:
    # ChatAnthropic pointed at the server's root, as at any Anthropic-compatible one. It raises its
    # ContextOverflowError (also the anthropic BadRequestError) for a 400 whose message says
    # "prompt is too long", as Anthropic's API words it; a max_tokens past the context is its
    # invalid-request error instead, as it is against Anthropic's API.
    def make(**overrides: Any) -> ChatAnthropic:
        return ChatAnthropic(**{**dict(model=state["model"], base_url=args.root, api_key=args.api_key, max_tokens=MAX_TOKENS,
                                       max_retries=0, timeout=120), **overrides})

    ai = make().invoke(QUESTION)
    expect(isinstance(ai, AIMessage) and ai.text != "", f"an answer without text: {ai!r}")
    usage_ok(ai, MAX_TOKENS)
    long = [HumanMessage("word " * state["max_model_len"])]
    raised = []
    for how, call in (("invoke", lambda: make().invoke(long)), ("stream", lambda: list(make().stream(long)))):
        try:
            call()
            raise CheckFailed(f"a prompt past the context was answered ({how})")
        except ContextOverflowError as err:
            expect(isinstance(err, anthropic.BadRequestError), f"{type(err).__name__} ({how}) is not an anthropic.BadRequestError")
            expect(str(err.api_message).startswith("prompt is too long: "), f"the overflow's message ({how}): {err.api_message!r}")
            raised.append(type(err).__name__)
    try:
        make(max_tokens=state["max_model_len"]).invoke(QUESTION)
        raise CheckFailed("a max_tokens past the context was answered")
    except anthropic.BadRequestError as err:
        expect(isinstance(err, ModelInvalidRequestError) and not isinstance(err, ContextOverflowError),
               f"a max_tokens past the context raised {type(err).__name__}")
        expect(str(err.api_message).startswith("input length and `max_tokens` exceed context limit: "), f"its message: {err.api_message!r}")
        raised.append(type(err).__name__)
    return {"version": importlib.metadata.version("langchain-anthropic"), "types": raised}


if __name__ == "__main__":
    for name, fn in [
        ("setup", check_setup),
        ("invoke", check_invoke),
        ("stream", check_stream),
        ("batch", check_batch),
        ("tool_calls", check_tool_calls),
        ("tool_round_trip", check_tool_round_trip),
        ("structured_json_schema", check_structured_json_schema),
        ("structured_function_calling", check_structured_function_calling),
        ("structured_json_mode", check_structured_json_mode),
        ("logprobs", check_logprobs),
        ("sampling", check_sampling),
        ("async", check_async),
        ("responses_api", check_responses_api),
        ("errors", check_errors),
        ("chat_anthropic", check_chat_anthropic),
    ]:
        runner.check(name, fn)
    runner.finish()
